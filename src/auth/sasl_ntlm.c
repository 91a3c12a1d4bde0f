/*
 * NTLM ([MS-NLMP], NTLMSSP over SASL as Outlook, Thunderbird and curl speak
 * it for IMAP, POP3 and SMTP): NEGOTIATE from the client, CHALLENGE from us,
 * AUTHENTICATE from the client, verified with the stored NT hash.
 *
 * NTLMv2 responses are verified (section 3.3.2): NTOWFv2 =
 * HMAC-MD5(NT hash, UTF-16LE(upper(user) + domain)), then NTProofStr =
 * HMAC-MD5(NTOWFv2, server challenge + blob) must equal the first 16 bytes
 * of the response.  A client that sends only the LMv2 response (24 bytes,
 * the same HMAC over an 8-byte client challenge) and an empty NT response
 * is verified from that.  NTLMv1 (24-byte responses, DES-based, crackable from one
 * captured exchange) is refused unless auth/ntlm-v1 is on; then both plain
 * NTLMv1 and NTLMv1 with extended session security are verified.
 *
 * Authentication only: no session key is derived and no signing or sealing
 * is offered, so the MIC an AUTHENTICATE message may carry is not checked
 * (it protects the negotiation of session security we do not provide).
 * Anonymous NTLM is refused.
 *
 * Every field of the client's binary messages is bounds-checked: security
 * buffers (length, offset) must lie inside the message, strings must be
 * valid UTF-16LE (or printable ASCII for OEM), the message is at most
 * auth/max-response bytes.
 *
 * The user is the UserName field; when it is not an address and the
 * DomainName field looks like a mail domain (has a dot), the login is
 * user@domain.  The NetBIOS domain a Windows client puts there otherwise is
 * used only in the NTLMv2 hash, as the client did.
 */
#include "auth/auth_private.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define NTLMSSP_NEGOTIATE_UNICODE 0x00000001u
#define NTLM_NEGOTIATE_OEM 0x00000002u
#define NTLMSSP_REQUEST_TARGET 0x00000004u
#define NTLMSSP_NEGOTIATE_NTLM 0x00000200u
#define NTLMSSP_NEGOTIATE_ALWAYS_SIGN 0x00008000u
#define NTLMSSP_TARGET_TYPE_SERVER 0x00020000u
#define NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY 0x00080000u
#define NTLMSSP_NEGOTIATE_TARGET_INFO 0x00800000u
#define NTLMSSP_NEGOTIATE_128 0x20000000u
#define NTLMSSP_NEGOTIATE_56 0x80000000u

#define NTLM_CHALLENGE_HEADER 56    /* fixed part of our CHALLENGE, version zeroed */
#define NTLM_AUTH_MIN 52            /* up to the session key fields */
#define NTLM_MAX_NAME 256           /* user, domain, workstation (bytes) */
#define NTLMV2_BLOB_MIN 28          /* RespType..ClientChallenge..Reserved */

enum av_id { MSV_AV_EOL = 0, MSV_AV_NB_COMPUTER = 1, MSV_AV_NB_DOMAIN = 2,
	     MSV_AV_DNS_COMPUTER = 3, MSV_AV_DNS_DOMAIN = 4 };

enum ntlm_phase { NTLM_NEGOTIATE, NTLM_AUTHENTICATE };

struct ntlm_state {
	enum ntlm_phase phase;
	uint32_t flags;                 /* as sent in our CHALLENGE */
	unsigned char challenge[8];
};

static void ntlm_free(struct sasl_server *s)
{
	struct ntlm_state *st = s->mech_state;

	if (st == NULL)
		return;
	explicit_bzero(st, sizeof(*st));
	free(st);
	s->mech_state = NULL;
}

static uint16_t rd16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void wr32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static bool has_signature(const unsigned char *msg, size_t len, uint32_t type)
{
	return len >= 12 && memcmp(msg, "NTLMSSP", 8) == 0 && rd32(msg + 8) == type;
}

/* A security buffer (len, maxlen, offset) at field; the bytes must lie
 * inside the message. */
static int sec_buf(const unsigned char *msg, size_t msg_len, size_t field,
		   const unsigned char **data_r, size_t *len_r)
{
	uint64_t len, off;

	if (field + 8 > msg_len)
		return -1;
	len = rd16(msg + field);
	off = rd32(msg + field + 4);
	if (off + len > msg_len)
		return -1;
	*data_r = len > 0 ? msg + off : msg;
	*len_r = (size_t)len;
	return 0;
}

/* The UTF-16LE form of ASCII/UTF-8 text into b. */
static void utf16_append(struct buf *b, const char *text)
{
	size_t len = strlen(text);
	unsigned char *tmp = xmalloc(2 * len + 2);
	long n = auth_utf8_to_utf16le(text, len, tmp, 2 * len + 2);

	if (n < 0 || buf_append(b, tmp, (size_t)n) < 0)
		panic("ntlm: cannot encode %zu bytes of host name", len);
	free(tmp);
}

static void av_pair(struct buf *b, enum av_id id, const char *text)
{
	unsigned char hdr[4];
	size_t before;

	wr16(hdr, (uint16_t)id);
	wr16(hdr + 2, 0);
	if (buf_append(b, hdr, 4) < 0)
		panic("ntlm: target info");
	before = b->len;
	utf16_append(b, text);
	wr16((unsigned char *)b->data + before - 2, (uint16_t)(b->len - before));
}

/* The NetBIOS-style name: the host name's first label, upper case, at most
 * 15 characters. */
static char *netbios_name(const char *host)
{
	size_t n = strcspn(host, ".");
	char *r = xstrndup(host, n > 15 ? 15 : n);

	for (char *p = r; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	return r;
}

static void send_challenge(struct sasl_server *s, uint32_t client_flags)
{
	struct ntlm_state *st = s->mech_state;
	const char *host = sasl_hostname(s), *dot = strchr(host, '.');
	char *nb = netbios_name(host);
	struct buf msg, info;
	unsigned char hdr[NTLM_CHALLENGE_HEADER];
	size_t name_len;
	uint32_t flags = NTLMSSP_REQUEST_TARGET | NTLMSSP_NEGOTIATE_NTLM |
			 NTLMSSP_TARGET_TYPE_SERVER | NTLMSSP_NEGOTIATE_TARGET_INFO;

	flags |= (client_flags & NTLMSSP_NEGOTIATE_UNICODE) ? NTLMSSP_NEGOTIATE_UNICODE
							    : NTLM_NEGOTIATE_OEM;
	flags |= client_flags & (NTLMSSP_NEGOTIATE_ALWAYS_SIGN |
				 NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY |
				 NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_56);
	st->flags = flags;
	if (s->params.test_nonce != NULL) {
		if (str_unhex(s->params.test_nonce, strlen(s->params.test_nonce), st->challenge,
			       sizeof(st->challenge)) < 0)
			panic("ntlm: test nonce must be 16 hex digits");
	} else {
		auth_random(st->challenge, sizeof(st->challenge));
	}

	buf_init(&info, 4096);
	av_pair(&info, MSV_AV_NB_DOMAIN, nb);
	av_pair(&info, MSV_AV_NB_COMPUTER, nb);
	av_pair(&info, MSV_AV_DNS_DOMAIN, dot != NULL ? dot + 1 : host);
	av_pair(&info, MSV_AV_DNS_COMPUTER, host);
	{
		unsigned char eol[4] = { 0, 0, 0, 0 };

		if (buf_append(&info, eol, 4) < 0)
			panic("ntlm: target info");
	}

	buf_init(&msg, 8192);
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, "NTLMSSP", 8);
	wr32(hdr + 8, 2);
	if (buf_append(&msg, hdr, sizeof(hdr)) < 0)
		panic("ntlm: challenge");
	/* TargetName, in the negotiated encoding. */
	if (flags & NTLMSSP_NEGOTIATE_UNICODE)
		utf16_append(&msg, nb);
	else if (buf_append_str(&msg, nb) < 0)
		panic("ntlm: challenge");
	name_len = msg.len - NTLM_CHALLENGE_HEADER;
	if (buf_append(&msg, info.data, info.len) < 0)
		panic("ntlm: challenge");
	{
		unsigned char *h = (unsigned char *)msg.data;

		wr16(h + 12, (uint16_t)name_len);
		wr16(h + 14, (uint16_t)name_len);
		wr32(h + 16, NTLM_CHALLENGE_HEADER);
		wr32(h + 20, flags);
		memcpy(h + 24, st->challenge, 8);
		wr16(h + 40, (uint16_t)info.len);
		wr16(h + 42, (uint16_t)info.len);
		wr32(h + 44, (uint32_t)(NTLM_CHALLENGE_HEADER + name_len));
	}
	st->phase = NTLM_AUTHENTICATE;
	sasl_continue(s, msg.data, msg.len);
	buf_deinit(&msg);
	buf_deinit(&info);
	free(nb);
}

static void ntlm_negotiate(struct sasl_server *s, const unsigned char *msg, size_t len)
{
	uint32_t flags;

	if (!has_signature(msg, len, 1) || len < 16) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed NTLM NEGOTIATE message");
		return;
	}
	flags = rd32(msg + 12);
	if (!(flags & (NTLMSSP_NEGOTIATE_UNICODE | NTLM_NEGOTIATE_OEM))) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "NTLM NEGOTIATE without a character set");
		return;
	}
	send_challenge(s, flags);
}

/* A name field as UTF-8 into out (empty allowed). */
static int ntlm_string(const struct ntlm_state *st, const unsigned char *p, size_t len,
		       struct buf *out)
{
	buf_reset(out);
	if (len > NTLM_MAX_NAME)
		return -1;
	if (st->flags & NTLMSSP_NEGOTIATE_UNICODE)
		return auth_utf16le_to_utf8(p, len, out);
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return -1;
	return buf_append(out, p, len);
}

/* UTF-16LE of upper(user) + domain, the NTOWFv2 input.  Upper case is
 * Windows' for ASCII and Latin-1; other letters are left as they are. */
static long ntowfv2_input(const char *user, const char *domain, unsigned char *out, size_t size)
{
	size_t ulen = strlen(user);
	long n = auth_utf8_to_utf16le(user, ulen, out, size), m;

	if (n < 0)
		return -1;
	for (long i = 0; i + 1 < n; i += 2) {
		unsigned c = out[i] | (unsigned)out[i + 1] << 8;

		if ((c >= 'a' && c <= 'z') || (c >= 0xe0 && c <= 0xfe && c != 0xf7))
			c -= 0x20;
		else if (c == 0xff)
			c = 0x178;
		out[i] = (unsigned char)c;
		out[i + 1] = (unsigned char)(c >> 8);
	}
	m = auth_utf8_to_utf16le(domain, strlen(domain), out + n, size - (size_t)n);
	return m < 0 ? -1 : n + m;
}

/* DES-encrypts one block with a 7-byte key (parity bits added), through
 * EVP's triple DES with three equal keys, which is single DES: plain DES
 * lives in OpenSSL 3's legacy provider. */
static int des7(const unsigned char key7[7], const unsigned char in[8], unsigned char out[8])
{
	unsigned char k[24];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok;

	if (ctx == NULL)
		panic("ntlm: out of memory");
	k[0] = key7[0] & 0xfe;
	for (int i = 1; i < 7; i++)
		k[i] = (unsigned char)(((key7[i - 1] << (8 - i)) | (key7[i] >> i)) & 0xfe);
	k[7] = (unsigned char)(key7[6] << 1);
	memcpy(k + 8, k, 8);
	memcpy(k + 16, k, 8);
	ok = EVP_EncryptInit_ex(ctx, EVP_des_ede3_ecb(), NULL, k, NULL) == 1 &&
	     EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
	     EVP_EncryptUpdate(ctx, out, &n, in, 8) == 1 && n == 8;
	EVP_CIPHER_CTX_free(ctx);
	explicit_bzero(k, sizeof(k));
	return ok ? 0 : -1;
}

/* DESL(K, D) of [MS-NLMP] section 6: three DES blocks keyed by the 16-byte
 * key split in 7-byte parts (the last padded with zeros). */
static int desl(const unsigned char key[16], const unsigned char data[8], unsigned char out[24])
{
	unsigned char k3[7] = { key[14], key[15], 0, 0, 0, 0, 0 };

	return des7(key, data, out) < 0 || des7(key + 7, data, out + 8) < 0 ||
	       des7(k3, data, out + 16) < 0 ? -1 : 0;
}

/* Verifies an NTLMv2 response. */
static bool verify_v2(const struct ntlm_state *st, const unsigned char nt_hash[16],
		      const char *user, const char *domain, const unsigned char *resp, size_t len)
{
	unsigned char input[4 * NTLM_MAX_NAME + 8], owf[AUTH_MD5_LEN], proof[AUTH_MD5_LEN];
	unsigned char *data;
	long n = ntowfv2_input(user, domain, input, sizeof(input));
	bool ok;

	if (n < 0 || auth_hmac("MD5", nt_hash, 16, input, (size_t)n, owf) != AUTH_MD5_LEN)
		return false;
	data = xmalloc(8 + len - 16);
	memcpy(data, st->challenge, 8);
	memcpy(data + 8, resp + 16, len - 16);
	ok = auth_hmac("MD5", owf, sizeof(owf), data, 8 + len - 16, proof) == AUTH_MD5_LEN &&
	     auth_equal(proof, resp, 16);
	free(data);
	explicit_bzero(owf, sizeof(owf));
	return ok;
}

/* Verifies an LMv2 response (section 3.3.2: HMAC-MD5(NTOWFv2, server
 * challenge + client challenge) + client challenge), the NTLMv2 proof a
 * client sends alone when it leaves the NT response empty (Cyrus SASL's
 * NTLM client with ntlm_v2 on does).  Same key and strength as NTLMv2. */
static bool verify_lmv2(const struct ntlm_state *st, const unsigned char nt_hash[16],
			const char *user, const char *domain, const unsigned char lm[24])
{
	unsigned char input[4 * NTLM_MAX_NAME + 8], owf[AUTH_MD5_LEN], data[16], proof[16];
	long n = ntowfv2_input(user, domain, input, sizeof(input));
	bool ok;

	if (n < 0 || auth_hmac("MD5", nt_hash, 16, input, (size_t)n, owf) != AUTH_MD5_LEN)
		return false;
	memcpy(data, st->challenge, 8);
	memcpy(data + 8, lm + 16, 8);
	ok = auth_hmac("MD5", owf, sizeof(owf), data, 16, proof) == AUTH_MD5_LEN &&
	     auth_equal(proof, lm, 16);
	explicit_bzero(owf, sizeof(owf));
	return ok;
}

/* Verifies an NTLMv1 response, with extended session security when it
 * was negotiated ([MS-NLMP] section 3.3.1). */
static bool verify_v1(const struct ntlm_state *st, const unsigned char nt_hash[16],
		      const unsigned char *lm, size_t lm_len, const unsigned char *resp)
{
	unsigned char data[16], want[24], h[AUTH_MD5_LEN];

	if ((st->flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY) && lm_len == 24) {
		memcpy(data, st->challenge, 8);
		memcpy(data + 8, lm, 8);  /* the client challenge */
		if (auth_digest("MD5", data, 16, h) != AUTH_MD5_LEN)
			return false;
		memcpy(data, h, 8);
	} else {
		memcpy(data, st->challenge, 8);
	}
	if (desl(nt_hash, data, want) < 0)
		return false;
	return auth_equal(want, resp, 24);
}

static void ntlm_authenticate(struct sasl_server *s, const unsigned char *msg, size_t len)
{
	struct ntlm_state *st = s->mech_state;
	const unsigned char *lm, *nt, *dom, *usr, *ws;
	size_t lm_len, nt_len, dom_len, usr_len, ws_len;
	struct buf user, domain;
	unsigned char nt_hash[16];
	const char *secret = NULL;
	struct sasl_user u;
	char *login;
	bool have_secret = false, match;
	int found;

	if (!has_signature(msg, len, 3) || len < NTLM_AUTH_MIN ||
	    sec_buf(msg, len, 12, &lm, &lm_len) < 0 || sec_buf(msg, len, 20, &nt, &nt_len) < 0 ||
	    sec_buf(msg, len, 28, &dom, &dom_len) < 0 || sec_buf(msg, len, 36, &usr, &usr_len) < 0 ||
	    sec_buf(msg, len, 44, &ws, &ws_len) < 0) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed NTLM AUTHENTICATE message");
		return;
	}
	auth_buf_init(&user, 4 * NTLM_MAX_NAME);
	auth_buf_init(&domain, 4 * NTLM_MAX_NAME);
	if (ntlm_string(st, usr, usr_len, &user) < 0 || ntlm_string(st, dom, dom_len, &domain) < 0) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed NTLM user or domain name");
		goto out;
	}
	if (user.len > 0)
		sasl_set_login(s, user.data, user.len);
	if (user.len == 0 || (nt_len == 0 && lm_len != 24)) {
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "anonymous NTLM refused");
		goto out;
	}
	if (nt_len != 0 && nt_len != 24 &&
	    (nt_len < 16 + NTLMV2_BLOB_MIN || nt[16] != 1 || nt[17] != 1)) {
		sasl_fail(s, SASL_FAIL_SYNTAX, "malformed NTLM response");
		goto out;
	}
	login = strchr(user.data, '@') == NULL && strchr(domain.data, '.') != NULL
		? xasprintf("%s@%s", user.data, domain.data) : xstrdup(user.data);
	found = sasl_lookup(s, login, &u);
	free(login);
	if (found < 0)
		goto out;
	sasl_set_login(s, user.data, user.len);
	if (nt_len == 24 && !s->params.cfg->s.auth_ntlm_v1) {
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "NTLMv1 response refused (auth/ntlm-v1 is off)");
		goto out;
	}
	if (found == 1)
		secret = s->backend.secret(s->backend.context, &u, AUTH_SECRET_NTLM);
	if (secret != NULL && str_unhex(secret, strlen(secret), nt_hash, sizeof(nt_hash)) == 0)
		have_secret = true;
	else
		memset(nt_hash, 0, sizeof(nt_hash));  /* dummy: same work */
	if (nt_len == 24)
		match = verify_v1(st, nt_hash, lm, lm_len, nt);
	else if (nt_len == 0)
		match = verify_lmv2(st, nt_hash, user.data, domain.data, lm);
	else
		match = verify_v2(st, nt_hash, user.data, domain.data, nt, nt_len);
	match = match && have_secret;
	explicit_bzero(nt_hash, sizeof(nt_hash));
	if (found != 1)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "unknown user");
	else if (!have_secret)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "no NTLM secret stored for the user");
	else if (!match)
		sasl_fail(s, SASL_FAIL_CREDENTIALS, "wrong password");
	else if (sasl_authorize(s, &u, NULL, 0))
		sasl_success(s, NULL, 0);
out:
	buf_deinit(&user);
	buf_deinit(&domain);
}

static void ntlm_start(struct sasl_server *s, const unsigned char *initial, size_t len,
		       bool has_initial)
{
	struct ntlm_state *st = xcalloc(1, sizeof(*st));

	st->phase = NTLM_NEGOTIATE;
	s->mech_state = st;
	if (!has_initial)
		sasl_continue(s, "", 0);
	else
		ntlm_negotiate(s, initial, len);
}

static void ntlm_step(struct sasl_server *s, const unsigned char *data, size_t len)
{
	struct ntlm_state *st = s->mech_state;

	if (st->phase == NTLM_NEGOTIATE)
		ntlm_negotiate(s, data, len);
	else
		ntlm_authenticate(s, data, len);
}

const struct sasl_mech_ops sasl_ntlm_ops = {
	.mech = SASL_MECH_NTLM,
	.name = "NTLM",
	.start = ntlm_start,
	.step = ntlm_step,
	.free_state = ntlm_free,
};
