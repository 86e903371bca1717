//! The one interface a session steps its protocol machine through, whatever the protocol and
//! scheme, and what is done with each kind of protocol output.

use protocol::policy::Canonical;
use protocol::session::Outcome;
use serde_bytes::ByteBuf;
use sha2::Digest;

use super::Node;
use super::session::{Purpose, Session};
use super::signing::Presignature;
use crate::mpc::ecdsa::{
    self, SecretAuxInfo, SecretIncompleteKeyShare, SecretKeyShare, SecretPresignature,
};
use crate::mpc::eddsa::{self, SecretEddsaShare};
use crate::mpc::{IncomingMessage, MpcError, Step};
use crate::seal::DataKey;

/// A running threshold protocol at this enclave, fed one relayed message at a time.
pub(super) trait Machine {
    /// Feeds one message from party `msg.from`.
    fn step(&mut self, msg: IncomingMessage) -> Result<Step<Product>, MpcError>;

    /// Whether its party indices are positions among the participants (ECDSA presignatures
    /// and signing) rather than node indices (keygen, auxiliary info, FROST, whose indices are
    /// those of keygen).
    fn positional(&self) -> bool;
}

/// What a finished protocol produced.
pub(super) enum Product {
    AuxInfo(SecretAuxInfo),
    EcdsaShare(SecretIncompleteKeyShare),
    EddsaShare(Box<SecretEddsaShare>),
    Presignature(SecretPresignature),
    Signature(Vec<u8>),
    /// A key share made whole before the last round (an import's, kept once every node
    /// confirmed).
    Share(super::keys::Share),
    /// A redistribution's end, once every party confirmed the same digest (`confirmed`): the
    /// share of the next generation at a receiver, none at a party that only deals (it leaves
    /// the roster).
    Redistributed {
        share: Option<super::keys::Share>,
        confirmed: [u8; 32],
    },
}

impl From<SecretAuxInfo> for Product {
    fn from(aux: SecretAuxInfo) -> Self {
        Self::AuxInfo(aux)
    }
}

impl From<SecretIncompleteKeyShare> for Product {
    fn from(share: SecretIncompleteKeyShare) -> Self {
        Self::EcdsaShare(share)
    }
}

impl From<SecretEddsaShare> for Product {
    fn from(share: SecretEddsaShare) -> Self {
        Self::EddsaShare(Box::new(share))
    }
}

impl From<SecretPresignature> for Product {
    fn from(presignature: SecretPresignature) -> Self {
        Self::Presignature(presignature)
    }
}

impl From<ecdsa::Signature> for Product {
    fn from(signature: ecdsa::Signature) -> Self {
        Self::Signature(signature.to_bytes().to_vec())
    }
}

impl From<[u8; eddsa::SIGNATURE_LEN]> for Product {
    fn from(signature: [u8; eddsa::SIGNATURE_LEN]) -> Self {
        Self::Signature(signature.to_vec())
    }
}

/// The protocol's own step, with its output as a [`Product`].
fn lift<T: Into<Product>>(step: Step<T>) -> Step<Product> {
    match step {
        Step::Continue(out) => Step::Continue(out),
        Step::Done(output, out) => Step::Done(output.into(), out),
    }
}

/// Each protocol machine of `mpc` is a [`Machine`]; `positional` as documented there.
macro_rules! protocol_machines {
    ($($machine:ty => $positional:literal),* $(,)?) => {$(
        impl Machine for $machine {
            fn step(&mut self, msg: IncomingMessage) -> Result<Step<Product>, MpcError> {
                self.handle(msg).map(lift)
            }

            fn positional(&self) -> bool {
                $positional
            }
        }
    )*};
}

protocol_machines! {
    ecdsa::AuxInfoGen => false,
    ecdsa::Keygen => false,
    ecdsa::Presign => true,
    ecdsa::Sign => true,
    eddsa::Dkg => false,
    eddsa::Sign => false,
}

fn data_key(s: &mut Session, what: &str) -> Result<DataKey, MpcError> {
    s.data_key
        .take()
        .ok_or_else(|| MpcError::Internal(format!("no data key for the {what}")))
}

impl Node {
    /// Keeps what session `s` produced (auxiliary info, a key share, a presignature, a
    /// signature) and says so in its outcome.
    pub(super) fn complete(
        &mut self,
        s: &mut Session,
        product: Product,
    ) -> Result<Outcome, MpcError> {
        match (product, &s.purpose) {
            (Product::AuxInfo(aux), Purpose::AuxInfo) => {
                let plain = aux.to_bytes()?;
                let data_key = data_key(s, "auxiliary info")?;
                self.keep_aux(aux, data_key, &plain)
            }
            (Product::EcdsaShare(incomplete), Purpose::CreateKey(request)) => {
                let aux = self
                    .aux
                    .as_ref()
                    .ok_or_else(|| MpcError::Internal("auxiliary info disappeared".into()))?;
                let aux = SecretAuxInfo::from_bytes(&aux.to_bytes()?)?;
                let share = SecretKeyShare::from_parts(incomplete, aux)?;
                let request = request.clone();
                let hash = sha2::Sha256::digest(request.canonical_bytes()).into();
                let data_key = data_key(s, "key share")?;
                self.store_key(data_key, request, hash, &s.participants, share.into())
            }
            (Product::EddsaShare(share), Purpose::CreateKey(request)) => {
                let request = request.clone();
                let hash = sha2::Sha256::digest(request.canonical_bytes()).into();
                let data_key = data_key(s, "key share")?;
                self.store_key(data_key, request, hash, &s.participants, share.into())
            }
            (Product::Share(share), Purpose::ImportKey(request, request_hash)) => {
                let (request, request_hash) = (request.clone(), *request_hash);
                let data_key = data_key(s, "key share")?;
                self.store_key(data_key, request, request_hash, &s.participants, share)
            }
            (
                Product::Redistributed {
                    share: Some(share), ..
                },
                Purpose::ReshareKey(resharing),
            ) => {
                let resharing = resharing.clone();
                let data_key = data_key(s, "key share")?;
                self.store_pending(data_key, resharing, &s.participants, share)
            }
            (Product::Presignature(secret), Purpose::Presign(key_id, generation)) => {
                // A presignature of a generation retired while it was made is never used.
                if self.keys.get(key_id).map(|k| k.generation) != Some(*generation) {
                    return Err(MpcError::Internal(format!(
                        "key {key_id} was reshared while this presignature was made"
                    )));
                }
                let made = self.session_clock();
                self.presignatures.insert(
                    s.channel.session(),
                    Presignature {
                        key_id: key_id.clone(),
                        participants: s.participants.clone(),
                        secret,
                        made,
                    },
                );
                Ok(Outcome::PresignatureReady)
            }
            (Product::AuxInfo(aux), Purpose::MoveAux(moving)) => {
                let moving = *moving;
                let data_key = data_key(s, "auxiliary information")?;
                self.keep_incoming_aux(moving, aux, data_key)
            }
            (Product::Redistributed { share, confirmed }, Purpose::MoveKey(moving)) => {
                let moving = (**moving).clone();
                let data_key = s.data_key.take();
                self.keep_incoming(moving, share, confirmed, data_key)
            }
            (Product::Signature(signature), Purpose::Sign(signing)) => Ok(Outcome::Signed {
                signature: ByteBuf::from(signature),
                public_key: ByteBuf::from(signing.public_key.clone()),
            }),
            _ => Err(MpcError::Internal(
                "the protocol's output does not fit its session".into(),
            )),
        }
    }
}
