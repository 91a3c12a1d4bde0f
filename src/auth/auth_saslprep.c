/*
 * SASLprep (RFC 4013) through libidn's stringprep "SASLprep" profile.
 * Stored strings (a password being set) refuse unassigned code points
 * (RFC 4013 section 2.5, RFC 5802's "stored strings"); queries (what a
 * client sends at login) allow them, as RFC 3454 section 7 says.
 */
#include "auth/auth_private.h"

#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

#include "directory/directory.h"

int auth_saslprep(const char *in, bool stored, char **out_r, const char **reason_r)
{
	char *out = NULL;
	int rc;

	*out_r = NULL;
	if (!auth_utf8_valid(in, strlen(in))) {
		*reason_r = "not valid UTF-8";
		return -1;
	}
	rc = stringprep_profile(in, &out, "SASLprep", stored ? STRINGPREP_NO_UNASSIGNED : 0);
	if (rc != STRINGPREP_OK) {
		/* libidn's messages name the rule ("Prohibited code points in
		 * input", "Conflicting bidirectional properties in input") and
		 * never echo the input. */
		*reason_r = stringprep_strerror((Stringprep_rc)rc);
		free(out);
		return -1;
	}
	if (out[0] == '\0') {
		/* Only characters mapped to nothing (U+00AD, ...). */
		*reason_r = "empty after SASLprep";
		free(out);
		return -1;
	}
	*out_r = out;
	return 0;
}

int auth_prepare_password(const char *password, bool stored, char **prepared_r, char **error_r)
{
	const char *reason;

	if (auth_saslprep(password, stored, prepared_r, &reason) < 0) {
		*error_r = xasprintf("the password is refused by SASLprep (RFC 4013): %s", reason);
		return -1;
	}
	return 0;
}
