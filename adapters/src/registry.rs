//! Which chains exist: the built-in adapters and the EVM chain table.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::bitcoin::Bitcoin;
use crate::evm::Evm;
use crate::solana::Solana;
use crate::{AdapterError, ChainAdapter, Result};

/// The built-in EVM chain table.
const EVM_CHAINS: &str = include_str!("evm_chains.toml");

/// One EVM chain: an entry of `evm_chains.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvmChain {
    /// Registry id (`ethereum`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Native coin symbol.
    pub symbol: String,
    /// Native coin decimals.
    pub decimals: u8,
    /// EIP-155 chain id by network name; the first network in the file is not special, the
    /// default network is `mainnet` when present.
    pub networks: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvmTable {
    chain: Vec<EvmChain>,
}

/// Every chain Cohort can sign for, by id.
#[derive(Debug, Clone)]
pub struct Registry {
    evm: BTreeMap<String, EvmChain>,
}

impl Registry {
    /// The built-in chains: Bitcoin, Solana and the EVM table compiled in.
    pub fn builtin() -> Self {
        let mut r = Self {
            evm: BTreeMap::new(),
        };
        // The built-in table is part of the source and tested; it always parses.
        if let Ok(chains) = parse_evm(EVM_CHAINS) {
            for c in chains {
                r.evm.insert(c.id.clone(), c);
            }
        }
        r
    }

    /// Adds (or replaces) EVM chains from a TOML table in the format of `evm_chains.toml`.
    pub fn with_evm_chains(mut self, toml_text: &str) -> Result<Self> {
        for c in parse_evm(toml_text)? {
            if NON_EVM.contains(&c.id.as_str()) {
                return Err(AdapterError::InvalidIntent(format!(
                    "EVM chain id `{}` is taken by a built-in chain",
                    c.id
                )));
            }
            self.evm.insert(c.id.clone(), c);
        }
        check_distinct(self.evm.values())?;
        Ok(self)
    }

    /// Chain ids, sorted.
    pub fn chains(&self) -> Vec<String> {
        let mut v: Vec<String> = NON_EVM.iter().map(|s| s.to_string()).collect();
        v.extend(self.evm.keys().cloned());
        v.sort();
        v
    }

    /// The EVM chain entry, if `chain` is an EVM chain.
    pub fn evm_chain(&self, chain: &str) -> Option<&EvmChain> {
        self.evm.get(chain)
    }

    /// [`Self::adapter`] for a key whose own (master) key may sign on `master_key_network`
    /// (`CHAIN:NETWORK`, an imported key's legacy network, from its approved import request):
    /// on that Bitcoin-family network the empty path is allowed besides the network's own
    /// first path component. Any other network, or none, gives [`Self::adapter`]'s.
    pub fn adapter_for_key(
        &self,
        chain: &str,
        network: Option<&str>,
        master_key_network: Option<&str>,
    ) -> Result<Arc<dyn ChainAdapter>> {
        let net = network.unwrap_or("mainnet");
        if master_key_network != Some(format!("{chain}:{net}").as_str()) {
            return self.adapter(chain, network);
        }
        match chain {
            "bitcoin" => Ok(Arc::new(Bitcoin::new(net)?.with_master_key())),
            "litecoin" => Ok(Arc::new(crate::litecoin::litecoin(net)?.with_master_key())),
            _ => self.adapter(chain, network),
        }
    }

    /// Whether `CHAIN:NETWORK` names a Bitcoin-family network this registry knows (what an
    /// import may name as its legacy network).
    pub fn is_bitcoin_family(&self, chain_network: &str) -> bool {
        chain_network
            .split_once(':')
            .is_some_and(|(chain, network)| {
                matches!(chain, "bitcoin" | "litecoin")
                    && self.adapter(chain, Some(network)).is_ok()
            })
    }

    /// The adapter for a chain and network (`None`: the chain's default network, `mainnet`).
    pub fn adapter(&self, chain: &str, network: Option<&str>) -> Result<Arc<dyn ChainAdapter>> {
        let network = network.unwrap_or("mainnet");
        match chain {
            "bitcoin" => Ok(Arc::new(Bitcoin::new(network)?)),
            "litecoin" => Ok(Arc::new(crate::litecoin::litecoin(network)?)),
            "solana" => Ok(Arc::new(Solana::new(network)?)),
            _ => match self.evm.get(chain) {
                Some(c) => Ok(Arc::new(Evm::new(c.clone(), network)?)),
                None => Err(AdapterError::UnknownChain {
                    chain: chain.to_string(),
                    known: self.chains().join(", "),
                }),
            },
        }
    }
}

/// Chains with their own module.
const NON_EVM: &[&str] = &["bitcoin", "litecoin", "solana"];

/// Two entries with one EIP-155 chain id would sign transactions valid on each other's chain
/// under two names: refused.
fn check_distinct<'a>(chains: impl Iterator<Item = &'a EvmChain>) -> Result<()> {
    let mut seen = BTreeMap::new();
    for c in chains {
        for (network, id) in &c.networks {
            if let Some(other) = seen.insert(*id, format!("{} {network}", c.id)) {
                return Err(AdapterError::InvalidIntent(format!(
                    "EIP-155 chain id {id} is both {other} and {} {network}",
                    c.id
                )));
            }
        }
    }
    Ok(())
}

fn parse_evm(text: &str) -> Result<Vec<EvmChain>> {
    let t: EvmTable = toml::from_str(text)
        .map_err(|e| AdapterError::InvalidIntent(format!("EVM chain table: {e}")))?;
    for c in &t.chain {
        if c.id.is_empty()
            || !c
                .id
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        {
            return Err(AdapterError::InvalidIntent(format!(
                "EVM chain id `{}`: use lowercase letters, digits and `-`",
                c.id
            )));
        }
        if c.networks.is_empty() || c.networks.values().any(|id| *id == 0) {
            return Err(AdapterError::InvalidIntent(format!(
                "EVM chain `{}` needs at least one network with a non-zero chain id",
                c.id
            )));
        }
    }
    Ok(t.chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses() {
        let chains = parse_evm(EVM_CHAINS).unwrap();
        check_distinct(chains.iter()).unwrap();
        assert!(
            chains
                .iter()
                .any(|c| c.id == "ethereum" && c.networks["mainnet"] == 1)
        );
        let r = Registry::builtin();
        assert!(r.chains().contains(&"bitcoin".to_string()));
        assert!(r.chains().contains(&"ethereum".to_string()));
    }

    #[test]
    fn unknown_chains_and_networks_are_named() {
        let r = Registry::builtin();
        let e = r.adapter("dogecoin", None).err().unwrap();
        assert!(matches!(e, AdapterError::UnknownChain { .. }));
        assert!(e.to_string().contains("bitcoin"), "{e}");
        let e = r.adapter("ethereum", Some("ropsten")).err().unwrap();
        assert!(matches!(e, AdapterError::UnknownNetwork { .. }), "{e}");
        let e = r.adapter("bitcoin", Some("ropsten")).err().unwrap();
        assert!(matches!(e, AdapterError::UnknownNetwork { .. }), "{e}");
    }

    #[test]
    fn a_new_evm_chain_is_one_entry() {
        let r = Registry::builtin()
            .with_evm_chains(
                r#"[[chain]]
id = "base"
name = "Base"
symbol = "ETH"
decimals = 18
networks = { mainnet = 8453 }
"#,
            )
            .unwrap();
        let a = r.adapter("base", None).unwrap();
        assert_eq!(a.chain(), "base");
        // A second name for Ethereum mainnet's chain id is refused.
        let e = Registry::builtin()
            .with_evm_chains(
                "[[chain]]\nid = \"eth2\"\nname = \"x\"\nsymbol = \"x\"\ndecimals = 18\nnetworks = { mainnet = 1 }",
            )
            .unwrap_err();
        assert!(e.to_string().contains("chain id 1"), "{e}");
        assert!(Registry::builtin().with_evm_chains("[[chain]]\nid = \"bitcoin\"\nname=\"x\"\nsymbol=\"x\"\ndecimals=1\nnetworks={a=1}").is_err());
        assert!(
            Registry::builtin()
                .with_evm_chains("[[chain]]\nid = \"x\"")
                .is_err()
        );
    }
}
