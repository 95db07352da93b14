/* posternctl explain (docs/posternctl.8). */
#include "cli.h"

int cli_explain(struct cli *cli)
{
    cli_error(cli, "not available in this version");
    return CLI_ERROR;
}
