import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Accounts } from '../core/accounts';
import type { Admitted, Gates } from '../core/gates';
import { refusal, WRONG_CREDENTIALS } from '../core/outcome';
import type { AuthMetrics } from '../metrics';
import {
  Credentials,
  type CredentialsBody,
  isCredentialShaped,
  PasswordChange,
  type PasswordChangeBody,
  TokenAnswer,
  validationMessage,
} from '../schemas';
import { answer } from './reply';

declare module 'fastify' {
  interface FastifyRequest {
    /** The hash-pool place a password-class request was given before its body was read. */
    admitted?: Admitted;
  }
}

export interface AccountRouteOptions {
  accounts: Accounts;
  gates: Gates;
  metrics: AuthMetrics;
}

/** Sign-up, login and password change: the password class, admitted by the hash pool. */
export async function accountRoutes(app: FastifyInstance, { accounts, gates, metrics }: AccountRouteOptions) {
  app.decorateRequest('admitted', undefined);
  // Admission before the body is read or parsed: in a storm most requests end here, for the cost of
  // their headers. A place the handler did not use (a bad body, say) is given back when the request ends.
  const admitFor =
    (route: string) =>
    async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      const admitted = gates.admit(request.ip, route);
      if ('ok' in admitted) return reply.send(answer(reply, admitted));
      request.admitted = admitted;
      return undefined;
    };
  const release = async (request: FastifyRequest): Promise<void> => request.admitted?.ticket?.cancel();
  const hooks = (route: string) => ({
    onRequest: admitFor(route),
    onResponse: release,
    onRequestAbort: release,
  });

  app.post<{ Body: CredentialsBody }>(
    '/v1/accounts',
    { schema: { body: Credentials }, ...hooks('create_account') },
    async (request, reply) => {
      const { username, password } = request.body;
      return answer(reply, await accounts.signUp(request.ip, username, password, request.admitted));
    },
  );

  // Validation is the handler's: a password too short for any account is a wrong password, not a
  // lesson in the password rules (sign-up states those).
  app.post<{ Body: CredentialsBody }>(
    '/v1/login',
    {
      schema: { body: Credentials, response: { 200: TokenAnswer } },
      attachValidation: true,
      ...hooks('login'),
    },
    async (request, reply) => {
      if (request.validationError) {
        if (isCredentialShaped(request.body)) {
          metrics.requests.inc({ route: 'login', outcome: 'invalid' });
          return answer(reply, WRONG_CREDENTIALS());
        }
        const { validation = [], message } = request.validationError;
        return answer(reply, refusal(400, 'bad_request', validationMessage(validation, 'body', message)));
      }
      const { username, password } = request.body;
      return answer(reply, await accounts.login(request.ip, username, password, request.admitted));
    },
  );

  app.post<{ Body: PasswordChangeBody }>(
    '/v1/accounts/password',
    { schema: { body: PasswordChange }, ...hooks('change_password') },
    async (request, reply) => {
      const { username, currentPassword, newPassword } = request.body;
      return answer(
        reply,
        await accounts.changePassword(request.ip, username, currentPassword, newPassword, request.admitted),
      );
    },
  );
}
