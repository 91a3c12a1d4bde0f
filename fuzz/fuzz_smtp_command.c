/*
 * libFuzzer target for the SMTP command parsers (src/smtp/smtp_parse.c):
 * smtp_check_line, smtp_parse_command, then the argument parser of the
 * verb (MAIL, RCPT, EHLO/HELO, BDAT, AUTH), smtp_parse_path and xtext.
 *
 * Properties checked besides "no crash, no sanitizer report":
 *   - every refusal is a reply line "[45]NN [45].N.N text";
 *   - an accepted path fits RFC 5321's limits and holds no control bytes;
 *   - decoded ESMTP values (ENVID, ORCPT, AUTH) hold no control bytes
 *     (HOSTILE-INPUT 5: nothing that could split a spool record);
 *   - xtext: encode(decode(x)) decodes to the same bytes.
 *
 * Seeds: fuzz/corpus/smtp_command; dictionary: fuzz/smtp.dict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const char *reply)
{
	if (strlen(reply) < 10 || (reply[0] != '4' && reply[0] != '5') || reply[3] != ' ' ||
	    reply[4] != reply[0] || reply[5] != '.')
		abort();
}

static void check_text(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
	}
}

static void check_path(const struct smtp_path *p)
{
	if (p->len >= SMTP_MAX_PATH || strlen(p->address) != p->len)
		abort();
	check_text(p->address);
	if (!p->null && !p->postmaster && (p->at == 0 || p->address[p->at] != '@'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data, *error = NULL;
	struct smtp_command cmd;
	struct smtp_path path;
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	char out[512], again[512];
	size_t n, m, used;
	uint64_t bsize;
	bool last;

	if (smtp_check_line(line, size, &error) < 0) {
		check_reply(error);
		return 0;
	}
	smtp_parse_command(line, size, &cmd);
	switch (cmd.id) {
	case SMTP_CMD_MAIL:
		if (smtp_parse_mail(cmd.args, cmd.args_len, size % 2 == 0, &path, &mp, &error) < 0) {
			check_reply(error);
		} else {
			check_path(&path);
			check_text(mp.envid);
			check_text(mp.auth);
		}
		break;
	case SMTP_CMD_RCPT:
		if (smtp_parse_rcpt(cmd.args, cmd.args_len, true, &path, &rp, &error) < 0) {
			check_reply(error);
		} else {
			check_path(&path);
			check_text(rp.orcpt);
		}
		break;
	case SMTP_CMD_EHLO:
	case SMTP_CMD_HELO:
		if (smtp_parse_helo(cmd.args, cmd.args_len, &error) < 0)
			check_reply(error);
		break;
	case SMTP_CMD_BDAT:
		if (smtp_parse_bdat(cmd.args, cmd.args_len, &bsize, &last, &error) < 0)
			check_reply(error);
		break;
	case SMTP_CMD_AUTH: {
		const char *mech, *init;
		size_t ml, il;

		if (smtp_parse_auth(cmd.args, cmd.args_len, &mech, &ml, &init, &il, &error) < 0)
			check_reply(error);
		else if (ml == 0 || ml > 20 || mech < cmd.args || mech + ml > cmd.args + cmd.args_len)
			abort();
		break;
	}
	default:
		break;
	}
	if (smtp_parse_path(line, size, true, true, &path, &used, &error) < 0)
		check_reply(error);
	else if (used > size)
		abort();
	else
		check_path(&path);
	if (smtp_xtext_decode(line, size, out, sizeof(out), &n) == 0) {
		struct buf b;

		check_text(out);
		buf_init(&b, 4096);
		if (smtp_xtext_encode(&b, out, n) < 0 ||
		    smtp_xtext_decode(b.data != NULL ? b.data : "", b.len, again, sizeof(again), &m) < 0 ||
		    m != n || memcmp(out, again, n) != 0)
			abort();
		buf_deinit(&b);
	}
	return 0;
}
