/* posternctl audit-directory (docs/posternctl.8). */
#include "cli.h"

int cli_audit_directory(struct cli *cli)
{
    cli_error(cli, "not available in this version");
    return CLI_ERROR;
}
