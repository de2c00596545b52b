import type { FastifyInstance } from 'fastify';
import type { Accounts } from '../core/accounts';
import { refusal, WRONG_CREDENTIALS } from '../core/outcome';
import type { AuthMetrics } from '../metrics';
import {
  Credentials,
  type CredentialsBody,
  isCredentialShaped,
  PasswordChange,
  type PasswordChangeBody,
  validationMessage,
} from '../schemas';
import { answer } from './reply';

/** Sign-up, login and password change: the password class, admitted by the hash pool. */
export async function accountRoutes(
  app: FastifyInstance,
  { accounts, metrics }: { accounts: Accounts; metrics: AuthMetrics },
) {
  app.post<{ Body: CredentialsBody }>(
    '/v1/accounts',
    { schema: { body: Credentials } },
    async (request, reply) => {
      const { username, password } = request.body;
      return answer(reply, await accounts.signUp(request.ip, username, password));
    },
  );

  // Validation is the handler's: a password too short for any account is a wrong password, not a
  // lesson in the password rules (sign-up states those).
  app.post<{ Body: CredentialsBody }>(
    '/v1/login',
    { schema: { body: Credentials }, attachValidation: true },
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
      return answer(reply, await accounts.login(request.ip, username, password));
    },
  );

  app.post<{ Body: PasswordChangeBody }>(
    '/v1/accounts/password',
    { schema: { body: PasswordChange } },
    async (request, reply) => {
      const { username, currentPassword, newPassword } = request.body;
      return answer(reply, await accounts.changePassword(request.ip, username, currentPassword, newPassword));
    },
  );
}
