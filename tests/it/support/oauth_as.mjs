// A real OAuth 2 authorization server for the probe's OAuth tests: panva's oidc-provider (a
// certified OpenID provider, from npm), serving its discovery metadata, the client-credentials
// grant with RFC 8707 resource indicators (opaque access tokens of a short, chosen lifetime),
// client_secret_basic / client_secret_post / private_key_jwt, and token introspection, which
// the test MCP server uses to accept or refuse a token.
//
// usage: node oauth_as.mjs PORT SPEC_JSON
//   SPEC_JSON: {"clients": [{client_id, client_secret?, token_endpoint_auth_method, jwks?}],
//               "introspector": {client_id, client_secret}, "resource": URI, "ttl": seconds,
//               "issuer": optional issuer to claim instead of http://127.0.0.1:PORT}
// Binds 127.0.0.1 only; prints "listening" when ready.
import Provider from "oidc-provider";

const [portArg, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);
const port = Number(portArg);
const issuer = spec.issuer || `http://127.0.0.1:${port}`;

const clients = spec.clients.map((c) => ({
  grant_types: ["client_credentials"],
  redirect_uris: [],
  response_types: [],
  ...c,
}));
clients.push({
  client_id: spec.introspector.client_id,
  client_secret: spec.introspector.client_secret,
  grant_types: [],
  redirect_uris: [],
  response_types: [],
});

const provider = new Provider(issuer, {
  clients,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => spec.resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => ({
        scope: "tools:read",
        audience: resource,
        accessTokenTTL: spec.ttl,
        accessTokenFormat: "opaque",
      }),
    },
  },
});
provider.on("server_error", (_ctx, err) => console.error("server_error", err));
provider.listen(port, "127.0.0.1", () => console.log("listening"));
