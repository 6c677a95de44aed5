//! Thin entry point: parse the command line, set up logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use valwatch::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo and the benchmark print their own lines on stdout; their
    // logs would drown them, so only warnings show unless VALWATCH_LOG asks.
    let default_level = match cli.command {
        Command::Demo(_) | Command::Bench(_) => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("VALWATCH_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: journald and log files get text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => {
            let config = valwatch::config::load(args.config.config.as_deref(), &args.overrides())?;
            valwatch::app::run(config, args.until_epoch.map(valwatch::chain::Epoch)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig(args) => {
            let ok =
                valwatch::app::check_config(args.config.as_deref(), &Default::default()).await?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Migrate(args) => {
            let url = valwatch::app::database_url(
                args.config.config.as_deref(),
                args.database_url,
                args.data_dir.map(|p| p.display().to_string()),
            )?;
            valwatch::app::open_store(&url).await?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Command::FailoverCheck(args) => Ok(ExitCode::from(valwatch::failover::run(args).await)),
        Command::TestAlert(args) => {
            let raw = valwatch::config::load_raw(args.config.as_deref())?;
            let mut raw_alerts = raw.alerts;
            let base = args.config.as_deref().and_then(|p| p.parent());
            raw_alerts.resolve_paths(base.unwrap_or(std::path::Path::new(".")));
            let mut problems = Vec::new();
            let alerts = valwatch::config::alerts::validate(
                raw_alerts,
                &|k| std::env::var(k).ok(),
                &mut problems,
            );
            if !problems.is_empty() {
                return Err(valwatch::config::ConfigError::Invalid(problems).into());
            }
            if alerts.channels.is_empty() {
                println!("no alert channel configured");
                return Ok(ExitCode::FAILURE);
            }
            let mut ok = true;
            for (channel, result) in valwatch::alerting::test_alert(&alerts).await {
                match result {
                    Ok(()) => println!("{channel}: accepted"),
                    Err(e) => {
                        ok = false;
                        println!("{channel}: FAILED: {e}");
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Report(args) => {
            valwatch::report::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            valwatch::demo::run_cli(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            valwatch::bench::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions(args) => {
            valwatch::cli::print_bytes(&valwatch::cli::completions(args.shell))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(args) => {
            match args.dir {
                Some(dir) => valwatch::cli::write_man_pages(&dir)?,
                None => valwatch::cli::print_bytes(&valwatch::cli::man_page()?)?,
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
