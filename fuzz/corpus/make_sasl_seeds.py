#!/usr/bin/env python3
"""Writes the seed corpora of the SASL fuzz targets: fuzz/corpus/sasl_scram,
sasl_digest and sasl_ntlm.  Each seed is a valid (or nearly valid) exchange
for the fuzzers' user john@example.com / "pencil", with their fixed salt and
server nonces (fuzz/fuzz_sasl_common.h), so that mutations start from inputs
that reach the proof and signature code.

Layout of a seed: one flags byte, then messages as 2-byte little-endian
length + bytes.  Run from anywhere: python3 fuzz/corpus/make_sasl_seeds.py
"""
import base64
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT, SUCCESS_DATA, NTLM_V1, ALT, NO_INITIAL = 0x01, 0x02, 0x04, 0x08, 0x10
SALT = base64.b64decode("QSXCR+Q6sek8bf92")
USER, PASSWORD = "john", "pencil"


def seed(flags, messages, text=False):
    out = bytes([flags])
    for m in messages:
        if isinstance(m, str):
            m = m.encode()
        if text:
            m = base64.b64encode(m)
        out += struct.pack("<H", len(m)) + m
    return out


def write(corpus, name, data):
    with open(os.path.join(HERE, corpus, name), "wb") as f:
        f.write(data)


# ---- SCRAM (RFC 5802) ----

def scram(md, gs2, user, cnonce, snonce="SNONCE", password=PASSWORD, ext=""):
    first_bare = f"n={user},r={cnonce}{ext}"
    server_first = (f"r={cnonce}{snonce},s={base64.b64encode(SALT).decode()},i=4096")
    salted = hashlib.pbkdf2_hmac(md, password.encode(), SALT, 4096)
    client_key = hmac.new(salted, b"Client Key", md).digest()
    stored = hashlib.new(md, client_key).digest()
    without = f"c={base64.b64encode(gs2.encode()).decode()},r={cnonce}{snonce}"
    auth = f"{first_bare},{server_first},{without}".encode()
    sig = hmac.new(stored, auth, md).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    return [gs2 + first_bare, f"{without},p={base64.b64encode(proof).decode()}", ""]


for md, flag, tag in (("sha256", 0, "256"), ("sha1", ALT, "1")):
    write("sasl_scram", f"valid_{tag}", seed(flag, scram(md, "n,,", USER, "abc")))
    write("sasl_scram", f"valid_{tag}_text", seed(flag | TEXT, scram(md, "n,,", USER, "abc"), True))
    write("sasl_scram", f"success_data_{tag}",
          seed(flag | SUCCESS_DATA, scram(md, "n,,", USER, "abc")[:2]))
    write("sasl_scram", f"authzid_{tag}",
          seed(flag, scram(md, "y,a=john@example.com,", "john@example.com", "x", ext=",e=1")))
    write("sasl_scram", f"wrong_{tag}", seed(flag, scram(md, "n,,", USER, "abc", password="x")))
    write("sasl_scram", f"unknown_{tag}", seed(flag, scram(md, "n,,", "nobody", "abc")))
    write("sasl_scram", f"no_initial_{tag}",
          seed(flag | NO_INITIAL, scram(md, "n,,", USER, "abc")))
write("sasl_scram", "escaped", seed(0, ["n,,n=jo=2Chn=3D,r=abc"]))
write("sasl_scram", "cbind_p", seed(0, ["p=tls-unique,,n=john,r=abc"]))

# ---- DIGEST-MD5 (RFC 2831) and CRAM-MD5 (RFC 2195) ----

def md5hex(b):
    return hashlib.md5(b).hexdigest()


def digest(user=USER, realm="example.com", nonce="NONCE", uri="imap/mail.example.com",
           password=PASSWORD, authzid=None):
    cnonce, nc = "OA6MHXh6VqTrRk", "00000001"
    a1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).digest()
    a1 += f":{nonce}:{cnonce}".encode() + (f":{authzid}".encode() if authzid else b"")
    a2 = f"AUTHENTICATE:{uri}"
    resp = md5hex(f"{md5hex(a1)}:{nonce}:{nc}:{cnonce}:auth:{md5hex(a2.encode())}".encode())
    r = (f'charset=utf-8,username="{user}",realm="{realm}",nonce="{nonce}",nc={nc},'
         f'cnonce="{cnonce}",digest-uri="{uri}",response={resp},qop=auth')
    if authzid:
        r += f',authzid="{authzid}"'
    return r


write("sasl_digest", "valid", seed(NO_INITIAL, [digest(), ""]))
write("sasl_digest", "valid_text", seed(NO_INITIAL | TEXT, [digest(), ""], True))
write("sasl_digest", "valid_address", seed(NO_INITIAL, [digest(user="john@example.com"), ""]))
write("sasl_digest", "success_data", seed(NO_INITIAL | SUCCESS_DATA, [digest()]))
write("sasl_digest", "authzid", seed(NO_INITIAL, [digest(authzid="john@example.com"), ""]))
write("sasl_digest", "wrong", seed(NO_INITIAL, [digest(password="x")]))
write("sasl_digest", "other_uri", seed(NO_INITIAL, [digest(uri="smtp/192.0.2.1")]))
write("sasl_digest", "reauth", seed(0, ['username="john",nonce="old"', digest()]))
cram = hmac.new(PASSWORD.encode(), b"<NONCE@mail.example.com>", "md5").hexdigest()
write("sasl_digest", "cram_valid", seed(ALT | NO_INITIAL, [f"john {cram}"]))
write("sasl_digest", "cram_text", seed(ALT | NO_INITIAL | TEXT, [f"john {cram}"], True))

# ---- NTLM ([MS-NLMP]) ----

def md4(data):
    """RFC 1320 (hashlib's md4 needs OpenSSL's legacy provider)."""
    def rotl(x, n):
        return ((x << n) | (x >> (32 - n))) & 0xffffffff
    msg = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    h = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]
    for i in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[i:i + 64])
        a, b, c, d = h
        for j in range(16):
            k, s = j, (3, 7, 11, 19)[j % 4]
            a, b, c, d = d, rotl((a + ((b & c) | (~b & d)) + x[k]) & 0xffffffff, s), b, c
        for j in range(16):
            k, s = (j % 4) * 4 + j // 4, (3, 5, 9, 13)[j % 4]
            a, b, c, d = d, rotl((a + ((b & c) | (b & d) | (c & d)) + x[k] + 0x5a827999)
                                 & 0xffffffff, s), b, c
        for j in range(16):
            k, s = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[j], (3, 9, 11, 15)[j % 4]
            a, b, c, d = d, rotl((a + (b ^ c ^ d) + x[k] + 0x6ed9eba1) & 0xffffffff, s), b, c
        h = [(v + w) & 0xffffffff for v, w in zip(h, (a, b, c, d))]
    return struct.pack("<4I", *h)


assert md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"
NT = md4(PASSWORD.encode("utf-16-le"))
CHALLENGE = bytes.fromhex("0123456789abcdef")


def negotiate(flags=0x00088207):
    return b"NTLMSSP\x00" + struct.pack("<II", 1, flags) + b"\x00" * 16


def authenticate(lm, nt, domain, user, unicode=True):
    enc = (lambda s: s.encode("utf-16-le")) if unicode else (lambda s: s.encode())
    fields = [lm, nt, enc(domain), enc(user), enc("WS"), b""]
    off, hdr, payload = 88, b"", b""
    for f in fields:
        hdr += struct.pack("<HHI", len(f), len(f), off + len(payload))
        payload += f
    head = b"NTLMSSP\x00" + struct.pack("<I", 3) + hdr + struct.pack("<I", 0x00088205)
    return head + b"\x00" * (88 - len(head)) + payload


def owf(user, domain):
    return hmac.new(NT, (user.upper() + domain).encode("utf-16-le"), "md5").digest()


def ntlmv2(user, domain):
    info = (struct.pack("<HH", 2, 8) + "MAIL".encode("utf-16-le") +
            struct.pack("<HH", 1, 8) + "MAIL".encode("utf-16-le") + b"\x00" * 4)
    blob = b"\x01\x01" + b"\x00" * 6 + b"\x00" * 8 + b"\xaa" * 8 + b"\x00" * 4 + info + b"\x00" * 4
    proof = hmac.new(owf(user, domain), CHALLENGE + blob, "md5").digest()
    return proof + blob


def lmv2(user, domain):
    cc = b"\xbb" * 8
    return hmac.new(owf(user, domain), CHALLENGE + cc, "md5").digest() + cc


write("sasl_ntlm", "v2", seed(0, [negotiate(),
                                  authenticate(b"", ntlmv2("john", "WORKGROUP"), "WORKGROUP", "john")]))
write("sasl_ntlm", "v2_text", seed(TEXT, [negotiate(), authenticate(
    b"", ntlmv2("john", "WORKGROUP"), "WORKGROUP", "john")], True))
write("sasl_ntlm", "v2_address", seed(NO_INITIAL, [negotiate(), authenticate(
    b"", ntlmv2("john@example.com", ""), "", "john@example.com")]))
write("sasl_ntlm", "lmv2", seed(0, [negotiate(),
                                    authenticate(lmv2("john", "D"), b"", "D", "john")]))
write("sasl_ntlm", "v1_shape", seed(NTLM_V1, [negotiate(0x00000206),
                                              authenticate(b"\x00" * 24, b"\x11" * 24, "D", "john", False)]))
write("sasl_ntlm", "plain", seed(ALT, [b"\x00john\x00pencil"]))
write("sasl_ntlm", "login", seed(ALT | NTLM_V1 | NO_INITIAL, [b"john", b"pencil"]))
