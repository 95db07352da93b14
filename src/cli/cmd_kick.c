/* posternctl kick (docs/posternctl.8). */
#include "cli.h"

int cli_kick(struct cli *cli)
{
    cli_error(cli, "not available in this version");
    return CLI_ERROR;
}
