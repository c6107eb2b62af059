//! Pieces shared by the two benchmark programs: the options both take (driver, its
//! configuration file, topic, threads), MPI ranks (or a single process without the `mpi`
//! feature), the progress bar.

use clap::Args;
use diaspora_stream::{Driver, ThreadCount, ThreadPool, TopicHandle};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The options of both programs: which topic of which driver, and the threads working on it.
/// Each program flattens it into its own options (`#[command(flatten)]`).
#[derive(Args, Debug)]
pub struct TopicArgs {
    /// Driver name (e.g. `files`), or `NAME:LIBRARY` to load driver NAME from a shared library.
    #[arg(short = 'd', long)]
    pub driver: String,
    /// JSON file with the driver's options.
    #[arg(short = 'c', long)]
    pub driver_config: Option<PathBuf>,
    /// Topic to use (it must exist).
    #[arg(short = 't', long)]
    pub topic: String,
    /// Threads of the producer's or consumer's pool (0: inline).
    #[arg(short = 'p', long, default_value_t = 1, value_parser = threads)]
    pub num_threads: usize,
    /// Which pool runs those threads: `std` (the library's own threads) or `rayon` (a rayon
    /// pool of that many threads; in builds with the `rayon` feature).
    #[arg(long, value_enum, default_value_t = PoolKind::Std)]
    pub pool: PoolKind,
}

/// See `--pool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolKind {
    Std,
    Rayon,
}

impl TopicArgs {
    /// Creates the driver from `--driver` and `--driver-config`, and opens `--topic`. With the
    /// `memory` driver, whose topics live in one process, the topic is created here.
    pub fn open(&self) -> Result<(Driver, TopicHandle), String> {
        let options = read_driver_config(self.driver_config.as_deref())?;
        let driver = Driver::new(&self.driver, &options)
            .map_err(|e| format!("driver {:?}: {e}", self.driver))?;
        if self.driver == "memory" && !driver.topic_exists(&self.topic).unwrap_or(false) {
            driver
                .create_topic(&self.topic, &Value::Object(Default::default()))
                .map_err(|e| format!("topic {:?}: {e}", self.topic))?;
        }
        let topic = driver
            .open_topic(&self.topic)
            .map_err(|e| format!("topic {:?}: {e}", self.topic))?;
        Ok((driver, topic))
    }

    /// The pool of `--num-threads` threads that `--pool` names.
    pub fn thread_pool(&self, driver: &Driver) -> Result<Arc<dyn ThreadPool>, String> {
        match self.pool {
            PoolKind::Std => Ok(driver.make_thread_pool(ThreadCount(self.num_threads))),
            #[cfg(feature = "rayon")]
            PoolKind::Rayon => diaspora_stream::RayonThreadPool::with_threads(self.num_threads)
                .map(|p| Arc::new(p) as Arc<dyn ThreadPool>)
                .map_err(|e| format!("rayon pool: {e}")),
            #[cfg(not(feature = "rayon"))]
            PoolKind::Rayon => {
                Err("--pool rayon needs a build with the `rayon` feature".to_string())
            }
        }
    }

    /// Prints the driver, configuration file and topic lines of the options report.
    pub fn print(&self) {
        println!("Driver: {}", self.driver);
        println!(
            "Driver config file: {}",
            self.driver_config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        println!("Topic: {}", self.topic);
        println!("Thread pool: {:?}", self.pool);
    }
}

/// Parses a thread count, at most 1024.
fn threads(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v <= 1024 => Ok(v),
        _ => Err(format!("{s:?} is not a thread count from 0 to 1024")),
    }
}

/// Reads a JSON driver configuration file (none: `{}`).
fn read_driver_config(path: Option<&Path>) -> Result<Value, String> {
    let Some(path) = path else {
        return Ok(Value::Object(Default::default()));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("could not open config file {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("config file {} is not valid JSON: {e}", path.display()))
}

/// A progress bar on stderr.
pub fn progress(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} events ({per_sec})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The processes of the run.
pub struct Ranks {
    /// This process's rank.
    pub rank: usize,
    /// Number of processes.
    pub size: usize,
    #[cfg(feature = "mpi")]
    universe: diaspora_stream::mpi::mpi::environment::Universe,
}

#[cfg(feature = "mpi")]
mod imp {
    use super::Ranks;
    use diaspora_stream::mpi::mpi::collective::SystemOperation;
    use diaspora_stream::mpi::mpi::traits::*;

    impl Ranks {
        /// Initialises MPI.
        pub fn init() -> Ranks {
            let universe =
                diaspora_stream::mpi::mpi::initialize().expect("MPI initialisation failed");
            let world = universe.world();
            Ranks {
                rank: world.rank() as usize,
                size: world.size() as usize,
                universe,
            }
        }
        /// Waits for every rank.
        pub fn barrier(&self) {
            self.universe.world().barrier();
        }
        /// Sum over ranks.
        pub fn sum_u64(&self, v: u64) -> u64 {
            let mut out = 0u64;
            self.universe
                .world()
                .all_reduce_into(&v, &mut out, SystemOperation::sum());
            out
        }
        /// Maximum over ranks.
        pub fn max_f64(&self, v: f64) -> f64 {
            let mut out = 0f64;
            self.universe
                .world()
                .all_reduce_into(&v, &mut out, SystemOperation::max());
            out
        }
        /// Declares the end of this rank's stream, collectively over all ranks.
        #[allow(dead_code)] // used by the producer benchmark only
        pub fn end_of_stream(&self, producer: &diaspora_stream::Producer) -> Result<(), String> {
            diaspora_stream::mpi::end_of_stream(&self.universe.world(), producer)
                .map_err(|e| e.to_string())
        }
        /// Exits with the worst code of all ranks.
        pub fn finish(self, code: i32) -> ! {
            let worst = self.sum_u64((code != 0) as u64);
            drop(self);
            std::process::exit(if worst > 0 { 1 } else { 0 })
        }
    }
}

#[cfg(not(feature = "mpi"))]
mod imp {
    use super::Ranks;

    impl Ranks {
        /// A single process.
        pub fn init() -> Ranks {
            Ranks { rank: 0, size: 1 }
        }
        /// Nothing to wait for.
        pub fn barrier(&self) {}
        /// Identity.
        pub fn sum_u64(&self, v: u64) -> u64 {
            v
        }
        /// Identity.
        pub fn max_f64(&self, v: f64) -> f64 {
            v
        }
        /// Declares the end of the (single) producer's stream.
        #[allow(dead_code)] // used by the producer benchmark only
        pub fn end_of_stream(&self, producer: &diaspora_stream::Producer) -> Result<(), String> {
            producer
                .end_of_stream(0, 1)
                .wait()
                .map_err(|e| e.to_string())
        }
        /// Exits with `code`.
        pub fn finish(self, code: i32) -> ! {
            std::process::exit(code)
        }
    }
}
