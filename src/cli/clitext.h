/* Printing untrusted strings (logins, DNs from the audit trail) in terminal tables. */
#ifndef POSTERN_CLI_CLITEXT_H
#define POSTERN_CLI_CLITEXT_H

#include <stdio.h>

/* The widest a text column gets; longer values are cut with "..." (JSON output has them). */
#define CLITEXT_COLUMN_MAX 40

/* Columns the text takes once printed by clitext_print (characters, escapes counted). */
int clitext_width(const char *s);
/* Prints s with every control character (C0, DEL, C1) as \xNN, so that a login an attacker
 * typed cannot move the cursor or recolour the terminal; padded with spaces or cut to
 * `width` columns (0: as it is). */
void clitext_print(FILE *out, const char *s, int width);

#endif
