const solc = require('solc');
const src = require('fs').readFileSync('Token.sol', 'utf8');
const out = JSON.parse(solc.compile(JSON.stringify({language: 'Solidity', sources: {'Token.sol': {content: src}},
  settings: {outputSelection: {'*': {'*': ['evm.bytecode.object']}}}})));
if (out.errors) for (const e of out.errors) console.error(e.formattedMessage);
process.stdout.write(out.contracts['Token.sol'].Token.evm.bytecode.object);
