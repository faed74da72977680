#!/usr/bin/env node
// The `powdb-backup` executable (package.json "bin"): the CLI lives in lib/cli/.
import './cli/main.js';
