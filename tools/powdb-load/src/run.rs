//! `run`: the workers on their threads, the stop, the log.
use crate::args::RunArgs;
use crate::hot::{self, HotTarget};
use crate::prng::Prng;
use crate::record::{Entries, Run, Transfers};
use crate::session::{Errors, Session, SharedErrors};
use crate::stop::Stop;
use crate::{append, ddl, transfer, unix_ms};
use powdb_backup::core::online::{Connection, Login, Reply};
use serde_json::json;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the stop waits for workers to finish their request in flight;
/// the log then records what is still unanswered as unknown.
const GRACE: Duration = Duration::from_millis(1500);

/// One scalar read as an integer (`null`, as `sum` of nothing, is 0).
pub fn scalar(conn: &mut Connection, powql: &str) -> Result<i64, String> {
    match conn.query(powql).map_err(|e| e.to_string())? {
        Reply::Scalar(v) if v == "null" => Ok(0),
        Reply::Scalar(v) => v.parse().map_err(|_| format!("`{powql}` answered {v:?}, not an integer")),
        other => Err(format!("`{powql}` answered {other:?}, not a scalar")),
    }
}

/// The accounts and their sum, and that Log is empty: a run's log describes
/// the whole of Log, so one run per database.
fn preflight(login: &Login) -> Result<(u64, i64), String> {
    let mut conn = Connection::connect(login).map_err(|e| e.to_string())?;
    if scalar(&mut conn, "count(Log)")? != 0 {
        return Err("table Log is not empty: run once per database, after `powdb-load setup`".into());
    }
    let accounts = scalar(&mut conn, "count(Acct)")?;
    if accounts < 2 {
        return Err(format!("{accounts} accounts: transfers need at least 2 (powdb-load setup --accounts)"));
    }
    Ok((accounts as u64, scalar(&mut conn, "sum(Acct { .bal })")?))
}

/// The workers' shared state and how to start one on its own thread.
struct Crew {
    login: Login,
    stop: Stop,
    errors: SharedErrors,
    connected: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    fatal: Arc<Mutex<Option<String>>>,
    spawned: usize,
}

impl Crew {
    /// Starts `work` once its session has connected; what it returns, if
    /// anything, is fatal and stops the run.
    fn spawn(&mut self, work: impl FnOnce(Session) -> Option<String> + Send + 'static) {
        let mut session = Session::new(self.login.clone(), self.stop.clone(), self.errors.clone());
        let (stop, connected, finished, fatal) =
            (self.stop.clone(), self.connected.clone(), self.finished.clone(), self.fatal.clone());
        thread::spawn(move || {
            while !stop.is_set() && !session.connect() {}
            connected.fetch_add(1, Ordering::SeqCst);
            if let Some(why) = work(session) {
                fatal.lock().unwrap().get_or_insert(why);
                stop.abort();
            }
            finished.fetch_add(1, Ordering::SeqCst);
        });
        self.spawned += 1;
    }

    /// Waits until `count` reaches every worker, or `limit` passes.
    fn all(&self, count: &AtomicUsize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while count.load(Ordering::SeqCst) < self.spawned && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        count.load(Ordering::SeqCst) >= self.spawned
    }
}

pub fn run(args: &RunArgs) -> Result<(), String> {
    let login = args.server.login();
    let seed = args.seed.unwrap_or_else(|| {
        (SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64) & ((1 << 53) - 1)
    });
    eprintln!("powdb-load: seed {seed}");
    let (accounts, total) = preflight(&login)?;
    let stop = Stop::install(args.watch_stdin);
    let errors: SharedErrors = Arc::new(Mutex::new(Errors::default()));
    let fatal = Arc::new(Mutex::new(None));
    let mut crew = Crew {
        login: login.clone(),
        stop: stop.clone(),
        errors: errors.clone(),
        connected: Arc::default(),
        finished: Arc::default(),
        fatal: fatal.clone(),
        spawned: 0,
    };
    let mut worker = 0;
    let mut rng = || {
        worker += 1;
        Prng::for_worker(seed, worker)
    };
    let writers: Vec<Entries> = (1..=args.writers).map(|_| Entries::default()).collect();
    for (i, rows) in writers.iter().enumerate() {
        let (rows, r, big) = (rows.clone(), rng(), args.big_values);
        crew.spawn(move |s| append::run(s, i as u64 + 1, r, big, rows));
    }
    let transfers = Arc::new(Transfers::default());
    for _ in 0..args.transfers {
        let (tally, r) = (transfers.clone(), rng());
        crew.spawn(move |s| {
            transfer::run(s, accounts, r, tally);
            None
        });
    }
    let hot_acked = Arc::new(AtomicU64::new(0));
    if let Some(table) = &args.hot {
        let rows = match args.hot_rows {
            Some(rows) => rows,
            None => {
                let mut conn = Connection::connect(&login).map_err(|e| e.to_string())?;
                scalar(&mut conn, &format!("count({table})"))?.max(0) as u64
            }
        };
        let target =
            HotTarget { table: table.clone(), key: args.hot_key.clone(), column: args.hot_column.clone(), rows };
        for _ in 0..args.hot_workers {
            let (target, r, acked) = (target.clone(), rng(), hot_acked.clone());
            crew.spawn(move |s| {
                hot::run(s, target, r, acked);
                None
            });
        }
    }
    let ddl_log = Entries::default();
    if args.ddl {
        let (log, r) = (ddl_log.clone(), rng());
        crew.spawn(move |s| ddl::run(s, r, log));
    }
    if !crew.all(&crew.connected, login.connect_timeout * 3) && !stop.is_set() {
        return Err(format!("not every worker could connect to {}:{}", login.host, login.port));
    }
    let started = unix_ms();
    println!("{}", json!({ "event": "started", "seed": seed, "started_unix_ms": started }));
    stop.wait(args.seconds.map(|s| Instant::now() + Duration::from_secs_f64(s)));
    crew.all(&crew.finished, GRACE);
    let config = json!({
        "writers": args.writers, "transfers": args.transfers, "big_values": args.big_values,
        "ddl": args.ddl, "io_timeout_ms": args.server.io_timeout_ms,
        "hot": args.hot, "hot_workers": if args.hot.is_some() { args.hot_workers } else { 0 },
    });
    let hot_updates = hot_acked.load(Ordering::SeqCst);
    let run =
        Run { seed, started, config, accounts, total, writers, transfers, ddl: ddl_log, hot_updates, errors, fatal };
    run.write(&args.log, stop.reason()).map_err(|e| format!("cannot write {}: {e}", args.log.display()))?;
    let fatal = run.fatal.lock().unwrap().clone();
    println!("{}", json!({ "event": "stopped", "seed": seed, "reason": stop.reason(), "fatal": fatal }));
    match fatal {
        Some(why) => Err(format!("seed {seed}: {why}")),
        None => Ok(()),
    }
}
