use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = secretwire::cli::Cli::parse();
    secretwire::logging::init(cli.log_format, cli.verbose, cli.quiet);
    match secretwire::cli::run(cli).await {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
