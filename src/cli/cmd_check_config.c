/* posternctl check-config (docs/posternctl.8). */
#include "cli.h"

int cli_check_config(struct cli *cli)
{
    cli_error(cli, "not available in this version");
    return CLI_ERROR;
}
