//! `kvmng`: the command-line face of kvmng.

mod demo;
mod info;

use clap::{Parser, Subcommand};

/// KVM driven by system calls: the kvmng command.
#[derive(Parser)]
#[command(name = "kvmng", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run real guests (real mode and long mode) through the kvmng library
    /// and print what they did and which backend carried it out.
    Demo,
    /// Describe this machine: kernel, /dev/kvm, kvmng syscalls, backend.
    Info,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo => demo::run(),
        Command::Info => info::run(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvmng: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
