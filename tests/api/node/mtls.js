// A Node client authenticated by its client certificate alone (mutual TLS, no token), as
// docs/api.md shows. Environment: KYSO_ADDRESS, KYSO_PROTOS, KYSO_CA, KYSO_CERT, KYSO_KEY,
// KYSO_REF. Prints the Stat reply, or the error's code and message, as JSON.
'use strict';

const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const env = process.env;
const definition = protoLoader.loadSync(['kyso/v1/documents.proto'], {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [env.KYSO_PROTOS],
});
const kyso = grpc.loadPackageDefinition(definition).kyso.v1;
const credentials = grpc.credentials.createSsl(
  fs.readFileSync(env.KYSO_CA), fs.readFileSync(env.KYSO_KEY), fs.readFileSync(env.KYSO_CERT),
);
const documents = new kyso.DocumentService(env.KYSO_ADDRESS, credentials);
documents.Stat({ ref: { ref: env.KYSO_REF } }, { deadline: new Date(Date.now() + 30000) }, (err, info) => {
  process.stdout.write(JSON.stringify(err ? { code: grpc.status[err.code], message: err.details } : info));
  documents.close();
});
