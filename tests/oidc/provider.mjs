// A real OpenID provider (the certified `oidc-provider` package) for the
// console's sign-in tests, on a free loopback port. One confidential client
// (the server under test) and three people: `member`, whose `groups` claim
// the tests map to a tenant, `stranger`, whose groups map to nothing, and
// `remote`, whose groups only the userinfo endpoint tells.
// Its own development login page takes any password.
//
// Environment: REDIRECT_URI (the server's callback), POST_LOGOUT_REDIRECT_URI,
// CLIENT_ID, CLIENT_SECRET. Prints `listening <port>` once it answers.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const need = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: ${name} is not set`);
    process.exit(2);
  }
  return value;
};
const redirectUri = need('REDIRECT_URI');
const postLogoutRedirectUri = need('POST_LOGOUT_REDIRECT_URI');
const clientId = need('CLIENT_ID');
const clientSecret = need('CLIENT_SECRET');

const people = {
  member: { email: 'member@example.com', email_verified: true, name: 'A Member', groups: ['staff', 'team-alice'] },
  stranger: { email: 'stranger@example.com', email_verified: true, name: 'A Stranger', groups: ['visitors'] },
  // Its groups are told by the userinfo endpoint only, not in the ID token.
  remote: { email: 'remote@example.com', email_verified: true, name: 'A Remote', groups: ['team-alice'], groupsInUserinfoOnly: true },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-signing-key', use: 'sig', alg: 'RS256' };

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`http://127.0.0.1:${port}`, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [postLogoutRedirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'groups'],
    },
    // The claims of the scopes go into the ID token too (as most
    // providers do for groups), not only to the userinfo endpoint.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    // A first-party client: no consent screen after the login page.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        return ctx.oidc.provider.Grant.find(grantId);
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile');
      grant.addOIDCClaims(['groups']);
      await grant.save();
      return grant;
    },
    async findAccount(ctx, id) {
      const person = people[id];
      if (!person) return undefined;
      const { groupsInUserinfoOnly, ...claims } = person;
      return {
        accountId: id,
        claims: async (use) => {
          if (groupsInUserinfoOnly && use !== 'userinfo') {
            const { groups, ...rest } = claims;
            return { sub: id, ...rest };
          }
          return { sub: id, ...claims };
        },
      };
    },
  });
  provider.on('server_error', (ctx, err) => console.error('provider error:', err));
  server.on('request', provider.callback());
  console.log(`listening ${port}`);
});
