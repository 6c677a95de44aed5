//! The command line: subcommands and the flags that override the config;
//! the shell completions and manual pages generated from it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

/// `valwatch --version`: the release and the commit it was built from
/// (build.rs), so that a report of "version 0.1.0" is never ambiguous
/// between two builds of an unreleased tree.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VALWATCH_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "valwatch",
    version = VERSION,
    about = "Independent liveness monitor for Ethereum validators"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow the beacon nodes, judge every epoch, store the verdicts.
    Run(RunArgs),
    /// Validate the configuration (every problem at once), try each beacon
    /// node, look up the validators, look at the database without changing it.
    CheckConfig(ConfigArgs),
    /// Apply the database migrations and exit.
    Migrate(MigrateArgs),
    /// Print the stored history (reads only; never creates or migrates).
    Report(ReportArgs),
    /// Send one test notification through every configured alert channel.
    TestAlert(ConfigArgs),
    /// Is it safe to start a backup validator client? Evidence of recent
    /// activity from every node; exit 0 only when every validator is safe.
    FailoverCheck(crate::failover::FailoverArgs),
    /// Watch a simulated network on this machine: no database server, no network.
    Demo(DemoArgs),
    /// Measure the per-epoch path (fetch, judge, store) on mainnet-sized epochs.
    Bench(BenchArgs),
    /// Print the shell completion script for SHELL on stdout.
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout, or write one page per
    /// command into a directory.
    Man(ManArgs),
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args, Clone)]
pub struct ManArgs {
    /// Write valwatch.1 and valwatch-COMMAND.1 for every command here.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The completion script of `shell` for the whole command line.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    // Rendered into memory: clap_complete panics on a failed write, and
    // stdout may be a closed pipe; the caller reports that as an error.
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "valwatch", &mut out);
    out
}

/// The top-level manual page, valwatch(1), in roff.
pub fn man_page() -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("rendering the manual page")?;
    Ok(out)
}

/// Writes valwatch.1 and a valwatch-COMMAND.1 per visible command into `dir`.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing the manual pages into {}", dir.display()))
}

/// `bytes` on stdout; a closed pipe is an error, not a panic.
pub fn print_bytes(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("writing to stdout")
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Stop after this many epochs are judged for good (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub epochs: Option<u64>,
    /// Address of the status page and metrics; "off" disables it.
    #[arg(long, value_name = "ADDR", default_value = crate::config::DEFAULT_LISTEN)]
    pub listen: String,
    /// Directory of the SQLite database (default: a fresh temporary directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Length of a simulated slot in milliseconds.
    #[arg(long, visible_alias = "speed", value_name = "MS", default_value_t = crate::demo::DEFAULT_SLOT_MS)]
    pub slot_ms: u64,
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// PostgreSQL server; a fresh database is created and dropped per size.
    #[arg(long, value_name = "URL", default_value = crate::bench::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Watched validators per run, comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_values_t = crate::bench::DEFAULT_SIZES)]
    pub sizes: Vec<u64>,
    /// Validators in the simulated network.
    #[arg(long, value_name = "N", default_value_t = crate::bench::DEFAULT_NETWORK)]
    pub network: u64,
    /// Epochs judged per size.
    #[arg(long, value_name = "N", default_value_t = crate::bench::DEFAULT_EPOCHS)]
    pub epochs: u64,
    /// Read every epoch's whole committees, as valwatch did before it read
    /// the watched validators' duty slots only (for comparison).
    #[arg(long)]
    pub whole_epoch_committees: bool,
    /// `table` (default) or `json`: one JSON object per size and line.
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,
    /// Internal: measure one size in this process and print one JSON line.
    #[arg(long, hide = true, value_name = "N")]
    pub child: Option<u64>,
    /// Internal: the simulated node the child reads.
    #[arg(long, hide = true, value_name = "URL")]
    pub beacon_node: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "VALWATCH_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Beacon node URL (repeatable); replaces `[[beacon_nodes]]`.
    #[arg(long = "beacon-node", value_name = "URL")]
    pub beacon_nodes: Vec<String>,
    /// Validators to watch, as the group `default`: indices, ranges a-b, 0x pubkeys.
    #[arg(long, value_name = "LIST")]
    pub validators: Option<String>,
    /// postgres://… or sqlite://… (default: the embedded SQLite file).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Address of the HTTP server (status, metrics); "off" disables it.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where to start when the database has no cursor (default: the current epoch).
    #[arg(long, value_name = "N")]
    pub from_epoch: Option<u64>,
    /// Directory of the embedded database.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Stop after judging this epoch for good (tests, backfills).
    #[arg(long, value_name = "N")]
    pub until_epoch: Option<u64>,
}

impl RunArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            beacon_nodes: self.beacon_nodes.clone(),
            validators: self.validators.clone(),
            database_url: self.database_url.clone(),
            listen: self.listen.clone(),
            from_epoch: self.from_epoch,
            data_dir: self.data_dir.as_ref().map(|p| p.display().to_string()),
        }
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    #[default]
    Table,
    Json,
    Csv,
}

/// The table `report --format csv` prints: one per call, so the output is
/// one header and rows that any CSV reader takes as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportKind {
    Attestations,
    Proposals,
    Sync,
    Balances,
    /// Issue 14: rewards and missed rewards per validator and epoch (Gwei).
    Rewards,
    /// Issue 14: the whole network's participation per epoch.
    Network,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ReportArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Only these validators (indices and ranges).
    #[arg(long, value_name = "LIST")]
    pub validators: Option<String>,
    #[arg(long, value_name = "N")]
    pub from_epoch: Option<u64>,
    #[arg(long, value_name = "M")]
    pub to_epoch: Option<u64>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// The table to print as CSV (required with --format csv).
    #[arg(long, value_enum, required_if_eq("format", "csv"))]
    pub kind: Option<ReportKind>,
}
