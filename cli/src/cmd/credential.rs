//! `cohort credential`: API credentials (ADR 0017). `new` makes a key on the machine that will
//! use it (the secret never leaves it); an admin registers its public half with `add`, and
//! `list` and `revoke` them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use coordinator::api::{
    ApiKey, CredentialInfo, CredentialList, PublicCredential, RegisterCredential, Role,
};

use super::{ClusterArgs, print_json};

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Make an API key: the secret into --out (mode 0600), the public half into --public (or
    /// printed), for an admin to register.
    New {
        /// The credential's name: 1 to 64 of a-z 0-9 . _ -.
        #[arg(long)]
        credential: String,
        /// Where the key goes (a new file).
        #[arg(long)]
        out: PathBuf,
        /// Where its public half goes (default: printed).
        #[arg(long)]
        public: Option<PathBuf>,
    },
    /// Register a credential from its public half (admin).
    Add {
        /// The public half, as `new` wrote it.
        #[arg(long)]
        public: PathBuf,
        /// Its role: read, request or admin.
        #[arg(long)]
        role: Role,
        /// Unix seconds after which it is refused (default: until revoked).
        #[arg(long)]
        expires: Option<u64>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Every credential, revoked ones included (admin).
    List {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Revoke a credential: its calls are refused from now on, by every coordinator (admin).
    Revoke {
        /// The credential's name.
        credential: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

fn api_err(e: coordinator::client::ApiCallError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Runs a credential command.
pub async fn run(command: CredentialCommand) -> anyhow::Result<ExitCode> {
    match command {
        CredentialCommand::New {
            credential,
            out,
            public,
        } => {
            let key = ApiKey::generate(&credential).map_err(|e| anyhow::anyhow!(e))?;
            key.save(&out)?;
            let text = serde_json::to_string_pretty(&key.public())? + "\n";
            match public {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                None => print!("{text}"),
            }
        }
        CredentialCommand::Add {
            public,
            role,
            expires,
            cluster,
        } => {
            let text = std::fs::read_to_string(&public)
                .map_err(|e| anyhow::anyhow!("{}: {e}", public.display()))?;
            let p: PublicCredential = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a credential's public half ({{\"credential\", \"public_key\"}}): {e}",
                    public.display()
                )
            })?;
            let body = RegisterCredential {
                credential: p.credential,
                public_key: p.public_key,
                role,
                expires,
            };
            let info: CredentialInfo = cluster
                .api()?
                .post("/v1/credentials", &body)
                .await
                .map_err(api_err)?;
            print_json(&info)?;
        }
        CredentialCommand::List { cluster } => {
            let list: CredentialList = cluster.get("/v1/credentials").await?;
            print_json(&list)?;
        }
        CredentialCommand::Revoke {
            credential,
            cluster,
        } => {
            if !coordinator::api::valid_name(&credential) {
                anyhow::bail!("`{credential}` is not a credential name (a-z 0-9 . _ -)");
            }
            let info: CredentialInfo = cluster
                .api()?
                .post(&format!("/v1/credentials/{credential}/revoke"), &())
                .await
                .map_err(api_err)?;
            print_json(&info)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
