// A real OpenID provider for the console's sign-in tests: `oidc-provider` (the certified
// Node.js implementation) with its development login pages, where any login name and password
// sign in as the account of that name.
//
// It listens on 127.0.0.1 at a free port and names itself http://localhost:PORT, so that the
// console (at 127.0.0.1) and the provider are different sites to the browser, as they are in
// production: the answer comes back as a cross-site navigation.
//
// Environment:
//   REDIRECT_URI    the console's callback, registered for the one client `tenure`
//   CLIENT_SECRET   that client's secret
//   GROUPS          JSON: groups claim per account, e.g. {"mia@example.com": ["tenure-admins"]}
// Prints one line of JSON, {"issuer": "..."}, once it listens; stops when stdin closes.

import http from 'node:http';
import Provider from 'oidc-provider';

const redirect = process.env.REDIRECT_URI;
const secret = process.env.CLIENT_SECRET;
if (!redirect || !secret) {
  console.error('REDIRECT_URI and CLIENT_SECRET must be set');
  process.exit(2);
}
const groups = JSON.parse(process.env.GROUPS || '{}');

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://localhost:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'tenure',
        client_secret: secret,
        redirect_uris: [redirect],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    // The account is the login name typed at the provider; its email is that name. An
    // account named `unverified@...` has an unverified email.
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: id,
            email_verified: !id.startsWith('unverified'),
            name: id,
            groups: groups[id] ?? [],
          };
        },
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'groups'],
    },
    cookies: { keys: ['tenure-browser-test-cookie-key'] },
    pkce: { required: () => true },
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});

process.stdin.on('end', () => server.close(() => process.exit(0)));
process.stdin.resume();
