//! `diaspora-ctl msk-token`: prints a fresh Amazon MSK IAM token (feature `msk`), to check that
//! a job's AWS credentials work before it starts.

use crate::error::{CliError, CliResult};
use clap::Args;

/// Help text after the options.
pub const HELP: &str = "\
Credentials come from the standard AWS chain: the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the shared config and credentials files with
--profile or AWS_PROFILE, a web identity token, ECS container credentials, EC2 instance
metadata; with --role-arn, a role assumed with them. The token (base64url of a SigV4-presigned
URL, valid 900 s) goes to standard output; with --expiry, its expiry time in milliseconds since
the Unix epoch follows on a second line. The kafka driver makes the same tokens when its options
hold {\"aws_msk_iam\": {\"region\": ...}}.

Example:
  diaspora-ctl msk-token --region us-east-1 --profile analysis > /dev/null && echo credentials ok";

/// Options of `msk-token`.
#[derive(Args, Debug)]
pub struct MskTokenArgs {
    /// AWS region of the MSK cluster (e.g. us-east-1).
    #[arg(long)]
    region: String,
    /// Named profile of the shared AWS config and credentials files.
    #[arg(long)]
    profile: Option<String>,
    /// Role to assume with the credentials found.
    #[arg(long)]
    role_arn: Option<String>,
    /// Session name of the assumed role (default MSKSASLDefaultSession).
    #[arg(long, requires = "role_arn")]
    session_name: Option<String>,
    /// Also print the token's expiry (milliseconds since the Unix epoch) on a second line.
    #[arg(long)]
    expiry: bool,
}

/// Runs `msk-token`.
#[cfg(feature = "msk")]
pub fn run(args: &MskTokenArgs) -> CliResult<()> {
    use diaspora_stream::drivers::kafka::{MskIamConfig, TokenSource};
    let config = MskIamConfig {
        region: args.region.clone(),
        profile: args.profile.clone(),
        role_arn: args.role_arn.clone(),
        session_name: args.session_name.clone(),
        token_lifetime_s: None,
    };
    let source = TokenSource::new(&config).map_err(|e| CliError(e.to_string()))?;
    let token = source.token().map_err(|e| CliError(e.to_string()))?;
    println!("{}", token.token);
    if args.expiry {
        println!("{}", token.expires_at_ms);
    }
    Ok(())
}

/// Runs `msk-token`: refused in a build without Amazon MSK support.
#[cfg(not(feature = "msk"))]
pub fn run(args: &MskTokenArgs) -> CliResult<()> {
    let _ = args;
    Err(CliError(
        "msk-token needs a build with Amazon MSK support (cargo feature `msk`, Spack variant +msk)"
            .into(),
    ))
}
