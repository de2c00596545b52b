// As the CLI does (supernode/cli.ts): the AWS SDK's Node 22 notice, once per thread that loads the SDK
// (each auth service's worker thread), is noise here. Jest's workers inherit this environment.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.tsx?$': ['@swc/jest'],
    // jose 6 ships ES modules only; Jest on Node 20 cannot require() them, so swc turns them into CommonJS.
    '/node_modules/jose/.+\\.js$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'ecmascript' } }, module: { type: 'commonjs' } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  setupFilesAfterEnv: ['aws-cdk-lib/testhelpers/jest-autoclean'],
  testTimeout: 30000,
  // Tests start real servers and child processes: two workers fit the 2-core machine.
  maxWorkers: 2,
  // A test that fails half-way may leave a server child running whose stderr is Jest's pipe; without
  // this, Jest then waits on that pipe forever after printing the results (one CI run hung to its
  // 90-minute limit that way). With it Jest prints "Force exiting Jest" after every run; that line is expected.
  forceExit: true,
};
