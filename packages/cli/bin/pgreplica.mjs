#!/usr/bin/env node
// pgreplica: runs the built program. The package's dist/ comes from `npm run build`
// (npm start builds too); this file exists before it, so npm links the command
// at install time.
import('../dist/main.js').catch((err) => {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('/dist/')) {
    process.stderr.write('pgreplica: not built yet: run `npm run build` in the repository (npm start builds too)\n');
    process.exit(1);
  }
  throw err;
});
