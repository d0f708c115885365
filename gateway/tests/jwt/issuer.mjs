// An independent JWT issuer for authgate's integration tests (../it/jwt.rs): the `jose` package
// (panva/jose). It knows nothing of authgate; it makes keys and signs what it is told.
//
//   node issuer.mjs keygen ALG KID PRIVATE_JWK   writes the private JWK, prints the public one
//   node issuer.mjs sign < REQUESTS.json          one token per line; REQUESTS is a JSON list of
//                                                 {"key": FILE, "alg": ..., "header": {...}, "claims": {...}}
//
// ALG is any JWS algorithm jose can generate a key for (ES256, ES384, EdDSA, RS256, PS256).
import { readFileSync, writeFileSync } from 'node:fs';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';

async function keygen(alg, kid, out) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const priv = await exportJWK(privateKey);
  writeFileSync(out, JSON.stringify({ ...priv, kid, alg }));
  const pub = await exportJWK(publicKey);
  console.log(JSON.stringify({ ...pub, kid, alg, use: 'sig' }));
}

async function sign(req) {
  const jwk = JSON.parse(readFileSync(req.key, 'utf8'));
  const key = await importJWK(jwk, req.alg);
  return new SignJWT(req.claims)
    .setProtectedHeader({ typ: 'JWT', ...(req.header || {}), alg: req.alg })
    .sign(key);
}

const [command, ...args] = process.argv.slice(2);
if (command === 'keygen' && args.length === 3) {
  await keygen(...args);
} else if (command === 'sign') {
  const requests = JSON.parse(readFileSync(0, 'utf8'));
  for (const req of requests) {
    console.log(await sign(req));
  }
} else {
  console.error('usage: node issuer.mjs keygen ALG KID PRIVATE_JWK | sign < REQUESTS.json');
  process.exit(2);
}
