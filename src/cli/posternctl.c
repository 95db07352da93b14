/* posternctl: explain, test and audit postern's authentication policy; list and end sessions.
 * Every subcommand reads the server's own configuration and runs the server's own code. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "postern/log.h"
#include "postern/version.h"

#ifndef POSTERN_SYSCONFDIR
#define POSTERN_SYSCONFDIR "/etc/postern"
#endif

static const struct cli_command COMMANDS[] = {
    {"check-config", "check-config [--format table|json]", CONFIG_REQUIRED, cli_check_config},
    {"explain", "explain LOGIN [--protocol imap|pop3] [--tls|--no-tls] [--mech M] [--profile P]",
     CONFIG_REQUIRED, cli_explain},
    {"test-login", "test-login LOGIN [options of explain]   (password from the terminal or stdin)",
     CONFIG_REQUIRED, cli_test_login},
    {"audit-directory", "audit-directory [--format table|json|csv]", CONFIG_REQUIRED,
     cli_audit_directory},
    {"audit-log", "audit-log [--since TIME] [--format table|json] [--top N] [FILE|-]",
     CONFIG_OPTIONAL, cli_audit_log},
    {"sessions", "sessions [--format table|json]", CONFIG_REQUIRED, cli_sessions},
    {"kick", "kick SESSION-ID|--account NAME", CONFIG_REQUIRED, cli_kick},
    {"join", "join --domain D --host FQDN... [--dc DC] [--computer-name N] [--keytab F]",
     CONFIG_OPTIONAL, cli_join},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: posternctl [-c FILE] COMMAND [ARGS]\n"
            "  -c FILE  the server's configuration (default " POSTERN_SYSCONFDIR "/postern.conf)\n"
            "  -v       print the version and exit\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        fprintf(out, "  %s\n", COMMANDS[i].synopsis);
    fprintf(out, "see posternctl(8)\n");
}

void cli_error(const struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "posternctl %s: ", cli && cli->argv ? cli->argv[0] : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int main(int argc, char **argv)
{
    const char *path = POSTERN_SYSCONFDIR "/postern.conf";
    int opt;
    while ((opt = getopt(argc, argv, "+c:vh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'v':
            printf("posternctl %s\n", POSTERN_VERSION);
            return CLI_OK;
        case 'h':
            usage(stdout);
            return CLI_OK;
        default:
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    /* The server's log lines (warnings of the directory client, ...) go to stderr, quietly. */
    log_setup(LOG_TARGET_STDERR, LOG_LEVEL_WARNING, "posternctl");
    const struct cli_command *cmd = NULL;
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        if (strcmp(argv[optind], COMMANDS[i].name) == 0)
            cmd = &COMMANDS[i];
    if (cmd == NULL) {
        fprintf(stderr, "posternctl: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return CLI_USAGE;
    }
    struct cli cli = {.config_path = path, .argc = argc - optind, .argv = argv + optind};
    char err[CONFIG_ERROR_MAX] = "";
    if (cmd->config != CONFIG_NONE) {
        cli.config = config_load(path, err, sizeof(err));
        cli.config_error = err;
        if (cli.config == NULL && cmd->config == CONFIG_REQUIRED) {
            fprintf(stderr, "posternctl: %s\n", err);
            return CLI_ERROR;
        }
    }
    int status = cmd->run(&cli);
    config_unref(cli.config);
    return status;
}
