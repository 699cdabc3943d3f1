// node-oidc-provider configured as our issuer is for the same benchmark: client
// credentials, client_secret_basic, ES256 JWT access tokens for one audience, a
// P-256 key in the JWKS; `WORKERS` processes (node's cluster) on 127.0.0.1:`PORT`.
import cluster from "node:cluster";
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const { PORT, WORKERS = "2", CLIENT_ID, CLIENT_SECRET } = process.env;
const AUDIENCE = "urn:neon:database";

if (cluster.isPrimary) {
  // One key for every worker, as one issuer publishes one JWKS.
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = { ...privateKey.export({ format: "jwk" }), use: "sig", alg: "ES256" };
  for (let i = 0; i < Number(WORKERS); i += 1) cluster.fork({ PEER_JWK: JSON.stringify(jwk) });
  process.on("SIGTERM", () => {
    for (const worker of Object.values(cluster.workers)) worker.kill("SIGTERM");
    process.exit(0);
  });
} else {
  const issuer = `http://127.0.0.1:${PORT}`;
  const provider = new Provider(issuer, {
    jwks: { keys: [JSON.parse(process.env.PEER_JWK)] },
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        id_token_signed_response_alg: "ES256",
      },
    ],
    ttl: { ClientCredentials: 900 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => AUDIENCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          audience: AUDIENCE,
          scope: "",
          accessTokenFormat: "jwt",
          accessTokenTTL: 900,
          jwt: { sign: { alg: "ES256" } },
        }),
      },
    },
  });
  provider.listen(Number(PORT), "127.0.0.1");
}
