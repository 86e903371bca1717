//! Litecoin, a Bitcoin-family chain: the same transaction format, BIP143 signature hashes and
//! P2WPKH scripts as Bitcoin (Litecoin Core's script interpreter is Bitcoin Core's), and its
//! own address prefixes. Everything but the prefixes is the Bitcoin adapter's.

use crate::Result;
use crate::bitcoin::{Bitcoin, Family, Net};

/// Litecoin's address parameters (Litecoin Core's `chainparams.cpp`).
pub const LITECOIN: Family = Family {
    id: "litecoin",
    symbol: "LTC",
    networks: &[
        Net {
            name: "mainnet",
            hrp: "ltc",
            p2pkh: 0x30,
            p2sh: 0x32,
            coin: 2,
        },
        Net {
            name: "testnet",
            hrp: "tltc",
            p2pkh: 0x6f,
            p2sh: 0x3a,
            coin: 1,
        },
        Net {
            name: "regtest",
            hrp: "rltc",
            p2pkh: 0x6f,
            p2sh: 0x3a,
            coin: 1,
        },
    ],
};

/// Litecoin on `mainnet`, `testnet` or `regtest`.
pub fn litecoin(network: &str) -> Result<Bitcoin> {
    Bitcoin::of(LITECOIN, network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{secp256k1_key, sign_prehash};
    use crate::{AdapterError, ChainAdapter, Intent, Utxo};

    /// Litecoin's BIP173 vectors (the generator point's P2WPKH, a P2WSH on testnet), and
    /// legacy base58 addresses (L…: P2PKH, M…: P2SH).
    #[test]
    fn litecoin_addresses() {
        let g = hex::decode("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")
            .unwrap();
        let ltc = litecoin("mainnet").unwrap();
        assert_eq!(
            ltc.address(&g).unwrap(),
            "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9"
        );
        let spk = ltc
            .parse_address("LTC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KGMN4N9")
            .unwrap();
        assert_eq!(
            spk.to_hex_string(),
            "0014751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        let t = litecoin("testnet").unwrap();
        let spk = t
            .parse_address("tltc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qsnr4fp")
            .unwrap();
        assert_eq!(
            spk.to_hex_string(),
            "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"
        );
        for a in [
            "LKKHMBjCU89fyFNgSRprDoD8Jb25N8uWvd",
            "M7zVKQKmtV5Rc7erVGVVC3khZbXxsS5HEX",
        ] {
            let spk = ltc.parse_address(a).unwrap();
            assert_eq!(ltc.address_of(&spk).unwrap(), a);
        }
        // Bitcoin's addresses are not Litecoin's.
        for a in [
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        ] {
            assert!(
                matches!(ltc.parse_address(a), Err(AdapterError::BadAddress { .. })),
                "{a}"
            );
        }
    }

    #[test]
    fn builds_and_summarises_in_litecoin() {
        let (sk, pk) = secp256k1_key(0x31);
        let ltc = litecoin("regtest").unwrap();
        let g = hex::decode("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798")
            .unwrap();
        let to = ltc.address(&g).unwrap();
        assert!(to.starts_with("rltc1q"), "{to}");
        let u = ltc
            .build(
                &pk,
                &[1],
                &Intent {
                    to: Some(to),
                    amount: Some("250000000".into()),
                    utxos: Some(vec![Utxo {
                        txid: hex::encode([5u8; 32]),
                        vout: 1,
                        amount: 300_000_000,
                    }]),
                    fee_rate: Some(10),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(u.summary.chain, "litecoin");
        assert_eq!(u.summary.transfers[0].display, "2.5 LTC");
        assert!(u.summary.from.starts_with("rltc1q"));
        // Litecoin mainnet keys live under m/2/…, Bitcoin mainnet's under m/0/….
        assert!(litecoin("mainnet").unwrap().check_path(&[2, 0]).is_ok());
        assert!(litecoin("mainnet").unwrap().check_path(&[0, 0]).is_err());
        let sig = sign_prehash(&sk, &u.payloads[0].signed_bytes());
        let signed = ltc.assemble(&pk, &u.tx, &[sig]).unwrap();
        assert_eq!(ltc.decode(&signed.raw).unwrap().from, u.summary.from);
    }
}
