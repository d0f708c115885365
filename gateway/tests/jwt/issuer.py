#!/usr/bin/env python3
"""An independent JWT issuer for authgate's integration tests (../it/jwt.rs): PyJWT with the
`cryptography` backend. It knows nothing of authgate; it makes keys and signs what it is told.

    issuer.py keygen ALG KID PRIVATE_PEM   writes the private key, prints its public JWK
    issuer.py sign < REQUESTS.json          one token per line; REQUESTS is a JSON list of
                                            {"key": PEM, "alg": ..., "header": {...}, "claims": {...}}
                                            ({"secret": "..."} instead of "key" for HS256)
    issuer.py none < REQUESTS.json          unsigned tokens: header {"alg": "none", ...}, empty signature
    issuer.py hs256-public-pem < REQUESTS.json
                                            HS256 with the PEM bytes of the RSA *public* key of
                                            "key" as the HMAC secret (the RFC 8725 §2.1 confusion);
                                            "format": "spki" (default) or "pkcs1"

ALG is RS256 (RSA 2048), PS256 (RSA 2048), ES256 (P-256), ES384 (P-384) or EdDSA (Ed25519).
"""

import base64
import hashlib
import hmac
import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def keygen(alg: str, kid: str, out: str) -> None:
    if alg in ("RS256", "PS256"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    elif alg == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
        public = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
        public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    else:
        sys.exit(f"issuer.py: unknown algorithm {alg}")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(out, "wb") as f:
        f.write(pem)
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    print(json.dumps(public))


def load_private(path: str):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def sign(req) -> str:
    # "secret" (a string) signs HS256 the ordinary way; "key" names a private key PEM.
    key = req["secret"].encode("utf-8") if "secret" in req else load_private(req["key"])
    return jwt.encode(
        req["claims"],
        key,
        algorithm=req["alg"],
        headers=req.get("header") or None,
    )


def unsigned(req) -> str:
    header = {"alg": "none", "typ": "JWT"}
    header.update(req.get("header") or {})
    return f"{b64url(compact_json(header))}.{b64url(compact_json(req['claims']))}."


def hs256_public_pem(req) -> str:
    public_format = {
        "spki": serialization.PublicFormat.SubjectPublicKeyInfo,
        "pkcs1": serialization.PublicFormat.PKCS1,
    }[req.get("format", "spki")]
    public_pem = (
        load_private(req["key"])
        .public_key()
        .public_bytes(serialization.Encoding.PEM, public_format)
    )
    header = {"alg": "HS256", "typ": "JWT"}
    header.update(req.get("header") or {})
    try:
        # PyJWT >= 2.4 refuses a PEM as an HMAC secret (CVE-2022-29217); then sign by hand.
        return jwt.encode(req["claims"], public_pem, algorithm="HS256", headers=header)
    except jwt.exceptions.InvalidKeyError:
        signing_input = f"{b64url(compact_json(header))}.{b64url(compact_json(req['claims']))}"
        mac = hmac.new(public_pem, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "keygen" and len(sys.argv) == 5:
        keygen(sys.argv[2], sys.argv[3], sys.argv[4])
        return
    make = {"sign": sign, "none": unsigned, "hs256-public-pem": hs256_public_pem}.get(command)
    if make is None:
        sys.exit(__doc__)
    for req in json.load(sys.stdin):
        print(make(req))


if __name__ == "__main__":
    main()
