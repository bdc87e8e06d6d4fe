//! `wsbox`: serves the echo app through the sandboxed component.

use anyhow::Result;
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use wsbox::apps::echo::EchoOptions;
use wsbox::cli::{Cli, Command, ServeArgs};
use wsbox::runner::WsboxComponent;
use wsbox::sandbox::ListenPolicy;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("wsbox: error: {message}");
    ExitCode::FAILURE
}

async fn serve(args: ServeArgs) -> Result<()> {
    let component = match &args.component {
        Some(path) => WsboxComponent::from_file(path)?,
        None => WsboxComponent::embedded()?,
    };
    let mut instance = component.instantiate(ListenPolicy::new([args.listen])).await?;
    let options = EchoOptions { name: args.server_name.clone(), listen: args.listen, compression: args.compression() };
    wsbox::apps::echo::run(&mut instance, &options, |url| {
        println!("wsbox {}: echo app listening on {url}", env!("CARGO_PKG_VERSION"));
        let _ = std::io::stdout().flush();
    })
    .await
}
