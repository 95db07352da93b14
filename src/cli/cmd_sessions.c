/* posternctl sessions (docs/posternctl.8). */
#include "cli.h"

int cli_sessions(struct cli *cli)
{
    cli_error(cli, "not available in this version");
    return CLI_ERROR;
}
