// Compiles the Tolk contracts with the pinned @ton/tolk-js into OUT_DIR (default: build/).
// Usage: node compile.js [OUT_DIR]. Called by build.sh and check.sh.
'use strict';

const fs = require('fs');
const path = require('path');
const { runTolkCompiler, getTolkCompilerVersion } = require('@ton/tolk-js');

const CONTRACTS = ['root', 'channel'];
const TOLK_VERSION = '1.3.0';

async function main() {
    const outDir = path.resolve(process.argv[2] || path.join(__dirname, 'build'));
    const version = await getTolkCompilerVersion();
    if (version !== TOLK_VERSION) {
        throw new Error(`Tolk compiler is v${version}, want v${TOLK_VERSION} (run npm ci)`);
    }
    fs.mkdirSync(outDir, { recursive: true });

    for (const name of CONTRACTS) {
        const result = await runTolkCompiler({
            entrypointFileName: `${name}.tolk`,
            fsReadCallback: p => fs.readFileSync(path.join(__dirname, p), 'utf-8'),
        });
        if (result.status === 'error') {
            throw new Error(`${name}.tolk: ${result.message}`);
        }
        fs.writeFileSync(path.join(outDir, `${name}.boc`), Buffer.from(result.codeBoc64, 'base64'));
        fs.writeFileSync(path.join(outDir, `${name}.fif`), result.fiftCode);
        fs.writeFileSync(path.join(outDir, `${name}.hash`), result.codeHashHex.toLowerCase() + '\n');
        console.log(`${name}.tolk -> ${path.relative(process.cwd(), outDir) || '.'}/${name}.boc (code hash ${result.codeHashHex.toLowerCase()})`);
    }
}

main().catch(err => {
    console.error(err.message || err);
    process.exit(1);
});
