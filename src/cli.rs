//! The command line: subcommands and the flags that override the config.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "valwatch",
    version,
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
    /// Validate the configuration, try each beacon node and the database.
    CheckConfig(ConfigArgs),
    /// Apply the database migrations and exit.
    Migrate(MigrateArgs),
    /// Print the stored history.
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
}
