//! Addresses of a Bitcoin-family network: output scripts to addresses and back (bech32 segwit,
//! base58 P2PKH and P2SH), refusing addresses of other networks and chains.

use bitcoin::base58;
use bitcoin::bech32::{self, Fe32, Hrp};
use bitcoin::hashes::Hash;
use bitcoin::{PubkeyHash, ScriptBuf, ScriptHash, WitnessProgram, WitnessVersion};

use super::Bitcoin;
use crate::{AdapterError, Result};

impl Bitcoin {
    /// The address of an output script, when one describes it.
    pub fn address_of(&self, script: &ScriptBuf) -> Option<String> {
        let hrp = Hrp::parse(self.net.hrp).ok()?;
        if script.is_p2pkh() {
            let mut v = vec![self.net.p2pkh];
            v.extend_from_slice(&script.as_bytes()[3..23]);
            return Some(base58::encode_check(&v));
        }
        if script.is_p2sh() {
            let mut v = vec![self.net.p2sh];
            v.extend_from_slice(&script.as_bytes()[2..22]);
            return Some(base58::encode_check(&v));
        }
        let version = script.witness_version()?;
        let program = &script.as_bytes()[2..];
        bech32::segwit::encode(hrp, Fe32::try_from(version.to_num()).ok()?, program).ok()
    }

    /// The output script an address pays to; refuses addresses of other networks and chains.
    pub fn parse_address(&self, address: &str) -> Result<ScriptBuf> {
        let bad = |reason: String| AdapterError::BadAddress {
            address: address.to_string(),
            reason,
        };
        let lower = address.to_ascii_lowercase();
        if lower.starts_with(&format!("{}1", self.net.hrp)) {
            let (hrp, version, program) = bech32::segwit::decode(address)
                .map_err(|e| bad(format!("bad bech32 address: {e}")))?;
            if !hrp.as_str().eq_ignore_ascii_case(self.net.hrp) {
                return Err(bad(format!(
                    "not a {} {} address",
                    self.family.id, self.net.name
                )));
            }
            let version = WitnessVersion::try_from(version)
                .map_err(|e| bad(format!("witness version: {e}")))?;
            let program = WitnessProgram::new(version, &program)
                .map_err(|e| bad(format!("witness program: {e}")))?;
            return Ok(ScriptBuf::new_witness_program(&program));
        }
        if let Ok(data) = base58::decode_check(address) {
            if data.len() == 21 {
                let hash: [u8; 20] = data[1..].try_into().map_err(|_| bad("length".into()))?;
                if data[0] == self.net.p2pkh {
                    return Ok(ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array(hash)));
                }
                if data[0] == self.net.p2sh {
                    return Ok(ScriptBuf::new_p2sh(&ScriptHash::from_byte_array(hash)));
                }
            }
            return Err(bad(format!(
                "a base58 address of another network or chain (not {} {})",
                self.family.id, self.net.name
            )));
        }
        Err(bad(format!(
            "not a {} {} address ({}1… or base58)",
            self.family.id, self.net.name, self.net.hrp
        )))
    }

    /// The address of an output script, or `script:HEX` when no address describes it.
    pub(super) fn describe(&self, script: &ScriptBuf) -> String {
        self.address_of(script)
            .unwrap_or_else(|| format!("script:{}", script.to_hex_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChainAdapter;

    /// BIP173's test vector: the P2WPKH address of the generator point.
    #[test]
    fn bip173_addresses() {
        let g = hex::decode("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")
            .unwrap();
        let want = [
            ("mainnet", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            ("testnet", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"),
            ("regtest", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"),
        ];
        for (net, addr) in want {
            let btc = Bitcoin::new(net).unwrap();
            assert_eq!(btc.address(&g).unwrap(), addr);
            let spk = btc.parse_address(addr).unwrap();
            assert_eq!(btc.address_of(&spk).unwrap(), addr);
        }
        // BIP173: upper case is valid too (QR codes use it).
        let upper = Bitcoin::new("mainnet").unwrap();
        assert_eq!(
            upper
                .parse_address("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4")
                .unwrap()
                .to_hex_string(),
            "0014751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        // Other address types round-trip: P2PKH, P2SH, P2WSH, P2TR (BIP350 vector).
        let btc = Bitcoin::new("mainnet").unwrap();
        for a in [
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        ] {
            let spk = btc.parse_address(a).unwrap();
            assert_eq!(btc.address_of(&spk).unwrap(), a);
        }
    }
}
