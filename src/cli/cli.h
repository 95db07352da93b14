/* posternctl's subcommands: one file each, one row each in the table of posternctl.c. */
#ifndef POSTERN_CLI_H
#define POSTERN_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "postern/config.h"

/* What every subcommand gets: the configuration the server would use (-c), already loaded,
 * and its own arguments (argv[0] is the subcommand's name). */
struct cli {
    const char *config_path;
    struct config *config; /* NULL when the subcommand needs none, or could not be read for
                              one that can do without (then config_error says why) */
    const char *config_error;
    int argc;
    char **argv;
};

/* Exit statuses shared by every subcommand (docs/posternctl.8). */
enum cli_status {
    CLI_OK = 0,       /* done; for audits: no failing finding */
    CLI_FINDINGS = 1, /* an audit found something that fails (check-config), a login would be
                         refused (explain, test-login) */
    CLI_USAGE = 2,    /* bad arguments */
    CLI_ERROR = 3,    /* could not do the job: configuration, directory, file */
};

enum cli_config_need { CONFIG_NONE, CONFIG_REQUIRED, CONFIG_OPTIONAL };

struct cli_command {
    const char *name;
    const char *synopsis; /* one line for usage() */
    enum cli_config_need config;
    int (*run)(struct cli *cli);
};

/* Subcommands (src/cli/cmd_*.c). */
int cli_check_config(struct cli *cli);
int cli_explain(struct cli *cli);
int cli_test_login(struct cli *cli);
int cli_audit_directory(struct cli *cli);
int cli_audit_log(struct cli *cli);
int cli_sessions(struct cli *cli);
int cli_kick(struct cli *cli);
int cli_join(struct cli *cli);

/* "posternctl NAME: message" on stderr. */
void cli_error(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
