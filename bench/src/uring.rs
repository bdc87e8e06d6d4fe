//! `wsbox-bench uring`: what `io_uring` would save the kernel's side of
//! the two cells where a server's own code is not what costs: a broadcast's
//! sends (one `send` per subscriber against one submission for all of them)
//! and a lone client's echo (`epoll_wait`, `recv` and `send` per message
//! against one `io_uring_enter` that sends the echo and waits for the next
//! message). No WebSocket and no server of the benchmark is involved: these
//! are the system calls alone, on loopback TCP, with the same sizes and
//! rates as the benchmark's cells, so the result bounds what moving wsbox's
//! event loop to `io_uring` could gain here.

use crate::run::RunOptions;
use anyhow::{Context, Result, bail};
use io_uring::{IoUring, opcode, types::Fd};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const BEGIN: &str = "<!-- wsbox-bench:uring:begin -->";
pub const END: &str = "<!-- wsbox-bench:uring:end -->";

/// A frame of the broadcast cells: 1 KiB of payload and its 4-byte header.
const FRAME: usize = 1028;
/// The lone client's message, as the echo cell sends it (32 B and a header).
const ECHO: usize = 34;
/// Both modes send without waiting and without SIGPIPE.
const FLAGS: i32 = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;

/// How a measured thread makes its system calls.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// One system call per operation, readiness from `epoll`.
    Syscalls,
    /// Operations queued on an `io_uring` and submitted together.
    Uring,
}

pub fn run(mut opts: RunOptions) -> Result<String> {
    if opts.quick {
        opts.rounds = 1;
        opts.duration = opts.duration.min(0.3);
    }
    let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    // The largest ring the cells use: a kernel that limits locked memory
    // (before 5.12) may refuse it where it takes a small one.
    let uring = IoUring::new(1024).map(drop).map_err(|e| e.to_string());
    let mut md = String::new();
    writeln!(
        md,
        "{} Command: `wsbox-bench uring` — {} round(s) of {} s per mode, interleaved; {}; the measured thread's CPU (`CLOCK_THREAD_CPUTIME_ID`, which includes the loopback receiver's processing the kernel runs in the sender's context).\n",
        crate::report::measured_on(),
        opts.rounds,
        opts.duration,
        if pinned { "the measured thread on core 0, its peer on core 1" } else { "unpinned (one core)" },
    )?;
    if let Err(e) = &uring {
        writeln!(md, "`io_uring` is not available here ({e}): only the system-call rows are measured.\n")?;
    }
    writeln!(md, "| cell | mode | CPU-µs per delivery or message (median) | rounds | `io_uring` ÷ system calls |")?;
    writeln!(md, "|---|---|---:|---:|---:|")?;
    // A smoke run (`--quick`) keeps the cells' shapes at a size any machine's
    // descriptor limit allows.
    let (many, few) = if opts.quick { (20, 10) } else { (1000, 100) };
    let cells =
        [Cell::Broadcast { subscribers: few, rate: 500 }, Cell::Broadcast { subscribers: many, rate: 50 }, Cell::Echo];
    let modes: &[Mode] = if uring.is_ok() { &[Mode::Syscalls, Mode::Uring] } else { &[Mode::Syscalls] };
    for cell in cells {
        let name = cell.name();
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
        for round in 0..opts.rounds {
            for (i, &mode) in modes.iter().enumerate() {
                let us = match cell {
                    Cell::Broadcast { subscribers, rate } => sends(subscribers, rate, mode, &opts, pinned)?,
                    Cell::Echo => echo(mode, &opts, pinned)?,
                };
                eprintln!("wsbox-bench: uring {name} round {} {}: {us:.2} CPU-µs", round + 1, label(mode));
                results[i].push(us);
            }
        }
        let medians: Vec<f64> = results.iter().map(|r| crate::report::median_of(r.iter().copied())).collect();
        for (i, &mode) in modes.iter().enumerate() {
            let rounds: Vec<String> = results[i].iter().map(|us| format!("{us:.2}")).collect();
            let ratio = if mode == Mode::Uring { format!("{:.2}×", medians[i] / medians[0]) } else { String::new() };
            writeln!(md, "| {name} | {} | {:.2} | {} | {ratio} |", label(mode), medians[i], rounds.join(", "))?;
        }
    }
    if let Some(out) = &opts.out {
        crate::report::write_between(out.as_path(), BEGIN, END, &md)?;
    }
    Ok(md)
}

/// The benchmark's cells whose system calls are measured.
#[derive(Clone, Copy)]
enum Cell {
    /// A publication's frame to every subscriber, `rate` times a second.
    Broadcast { subscribers: usize, rate: u64 },
    /// The lone client's request and echo.
    Echo,
}

impl Cell {
    fn name(self) -> String {
        match self {
            Cell::Broadcast { subscribers, rate } => {
                format!("broadcast: {subscribers} subscribers × {rate} publications/s, 1 KiB")
            }
            Cell::Echo => "lone client: 1×1×32 B echo, closed loop".into(),
        }
    }
}

fn label(mode: Mode) -> &'static str {
    match mode {
        Mode::Syscalls => "a system call each",
        Mode::Uring => "`io_uring`",
    }
}

/// The calling thread's CPU time so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Keeps the calling thread on `core` (when `pinned`).
fn pin(core: usize, pinned: bool) {
    if !pinned {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity read and write only that set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// `n` loopback connections, Nagle off on both ends: (server ends, client ends).
fn connections(n: usize) -> Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (mut servers, mut clients) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let limit = || format!("opening {n} loopback connections (`ulimit -n` must allow {})", 2 * n + 16);
    for _ in 0..n {
        let client = TcpStream::connect(addr).with_context(limit)?;
        let (server, _) = listener.accept().with_context(limit)?;
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        servers.push(server);
        clients.push(client);
    }
    Ok((servers, clients))
}

/// The broadcast's sends: `rate` publications a second, each one frame to
/// every one of `n` subscribers, whose ends a reader on the other core
/// drains. Returns the sending thread's CPU-µs per delivery.
fn sends(n: usize, rate: u64, mode: Mode, opts: &RunOptions, pinned: bool) -> Result<f64> {
    let (servers, clients) = connections(n)?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || drain(clients, &stop, pinned)
    });
    let measured = std::thread::scope(|s| {
        s.spawn(|| -> Result<(Duration, u64)> {
            pin(0, pinned);
            let frame = vec![0x42u8; FRAME];
            let mut ring = match mode {
                Mode::Uring => Some(IoUring::new(n.next_power_of_two() as u32)?),
                Mode::Syscalls => None,
            };
            let period = Duration::from_nanos(1_000_000_000 / rate);
            let (start, cpu) = (Instant::now(), thread_cpu());
            let (mut next, mut deliveries) = (start, 0u64);
            while start.elapsed().as_secs_f64() < opts.duration {
                match &mut ring {
                    None => {
                        for s in &servers {
                            // SAFETY: `frame` is valid for its length.
                            let sent = unsafe { libc::send(s.as_raw_fd(), frame.as_ptr().cast(), FRAME, FLAGS) };
                            if sent < 0 {
                                return Err(std::io::Error::last_os_error()).context("send");
                            }
                            check(sent as i64)?;
                        }
                    }
                    Some(ring) => {
                        for (i, s) in servers.iter().enumerate() {
                            let send = opcode::Send::new(Fd(s.as_raw_fd()), frame.as_ptr(), FRAME as u32)
                                .flags(FLAGS)
                                .build()
                                .user_data(i as u64);
                            // SAFETY: `frame` outlives the operation: every
                            // completion is reaped below before it is dropped.
                            unsafe { ring.submission().push(&send) }.context("the submission queue is full")?;
                        }
                        ring.submit_and_wait(n)?;
                        for done in ring.completion() {
                            check(done.result() as i64)?;
                        }
                    }
                }
                deliveries += n as u64;
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Ok((thread_cpu() - cpu, deliveries))
        })
        .join()
        .expect("the sending thread")
    });
    stop.store(true, Ordering::Relaxed);
    drop(servers);
    reader.join().expect("the reading thread")?;
    let (cpu, deliveries) = measured?;
    Ok(cpu.as_secs_f64() * 1e6 / deliveries as f64)
}

/// A send's result (`io_uring`'s: a negative errno on failure): a whole
/// frame, or an error. A socket that does not take a whole frame at once
/// fails the run rather than deferring the rest, so every byte of the
/// kernel's work happens in the measured thread (not in a later wake-up,
/// nor in one of `io_uring`'s worker threads).
fn check(result: i64) -> Result<()> {
    match result {
        r if r < 0 => bail!("send: {}", std::io::Error::from_raw_os_error(-r as i32)),
        r if r as usize != FRAME => bail!("a short send ({r} of {FRAME} bytes): the reader fell behind"),
        _ => Ok(()),
    }
}

/// An epoll instance: plain readiness, as an epoll server waits for it.
struct Epoll {
    fd: std::os::fd::OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// Room for `capacity` events per wait.
    fn new(capacity: usize) -> Result<Self> {
        // SAFETY: a plain system call; a descriptor it returns is ours.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_create1");
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let fd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
        Ok(Self { fd, events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity] })
    }

    /// Watches `socket` for input, reported as `token`.
    fn add(&self, socket: &TcpStream, token: u64) -> Result<()> {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: both descriptors are open; `event` is a valid epoll_event.
        if unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, socket.as_raw_fd(), &mut event) } < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_ctl");
        }
        Ok(())
    }

    /// The tokens of the sockets ready within `timeout_ms`.
    fn wait(&mut self, timeout_ms: i32) -> impl Iterator<Item = u64> + '_ {
        let room = self.events.len() as i32;
        // SAFETY: `events` has room for `room` entries.
        let ready = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), room, timeout_ms) };
        self.events[..ready.max(0) as usize].iter().map(|e| e.u64)
    }
}

/// Reads every client end until `stop` and the server ends close.
fn drain(clients: Vec<TcpStream>, stop: &AtomicBool, pinned: bool) -> Result<()> {
    pin(1, pinned);
    let mut epoll = Epoll::new(256)?;
    for (i, c) in clients.iter().enumerate() {
        c.set_nonblocking(true)?;
        epoll.add(c, i as u64)?;
    }
    let mut buf = vec![0u8; 1 << 16];
    while !stop.load(Ordering::Relaxed) {
        for token in epoll.wait(50) {
            let mut client = &clients[token as usize];
            while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
    Ok(())
}

/// The lone client's echo: a client on the other core sends a message and
/// waits for it back, again and again. Returns the echoing thread's CPU-µs
/// per message.
fn echo(mode: Mode, opts: &RunOptions, pinned: bool) -> Result<f64> {
    let (mut servers, mut clients) = connections(1)?;
    let (server, mut client) = (servers.remove(0), clients.remove(0));
    let stop = Arc::new(AtomicBool::new(false));
    let peer = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || -> std::io::Result<()> {
            pin(1, pinned);
            let (message, mut back) = ([0x61u8; ECHO], [0u8; ECHO]);
            while !stop.load(Ordering::Relaxed) {
                client.write_all(&message)?;
                client.read_exact(&mut back)?;
            }
            Ok(())
        }
    });
    let measured = std::thread::scope(|s| {
        s.spawn(|| -> Result<(Duration, u64)> {
            pin(0, pinned);
            let deadline = Duration::from_secs_f64(opts.duration);
            let (start, cpu) = (Instant::now(), thread_cpu());
            let messages = match mode {
                Mode::Syscalls => echo_with_epoll(&server, start, deadline)?,
                Mode::Uring => echo_with_uring(&server, start, deadline)?,
            };
            Ok((thread_cpu() - cpu, messages))
        })
        .join()
        .expect("the echoing thread")
    });
    stop.store(true, Ordering::Relaxed);
    // The peer may be waiting for an echo: closing our end ends its read.
    drop(server);
    let _ = peer.join().expect("the client thread");
    let (cpu, messages) = measured?;
    Ok(cpu.as_secs_f64() * 1e6 / messages.max(1) as f64)
}

/// `epoll_wait`, `recv`, `send` per message, as an epoll server makes them.
fn echo_with_epoll(server: &TcpStream, start: Instant, deadline: Duration) -> Result<u64> {
    server.set_nonblocking(true)?;
    let mut epoll = Epoll::new(1)?;
    epoll.add(server, 0)?;
    let (mut buf, mut messages) = ([0u8; 4096], 0u64);
    let mut stream = server;
    while start.elapsed() < deadline {
        if epoll.wait(100).next().is_none() {
            continue;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                stream.write_all(&buf[..n])?;
                messages += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(messages)
}

/// One `io_uring_enter` per message: it submits the echo's send and the
/// next receive, and returns when both are done. (The socket stays
/// blocking: `io_uring` answers a receive on a non-blocking socket that has
/// nothing yet with `EAGAIN` instead of waiting for it.)
fn echo_with_uring(server: &TcpStream, start: Instant, deadline: Duration) -> Result<u64> {
    let mut ring = IoUring::new(8)?;
    let fd = Fd(server.as_raw_fd());
    let (mut incoming, mut outgoing, mut messages) = ([0u8; 4096], [0u8; 4096], 0u64);
    let receive = |buf: &mut [u8; 4096]| opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32).build().user_data(0);
    // SAFETY (every push below): the buffers outlive the ring's operations,
    // since each iteration waits for all it submitted.
    unsafe { ring.submission().push(&receive(&mut incoming)) }.context("queue")?;
    let mut in_flight = 1;
    while start.elapsed() < deadline {
        ring.submit_and_wait(in_flight)?;
        in_flight = 0;
        let mut received = None;
        for done in ring.completion() {
            if done.result() < 0 {
                bail!("io_uring: {}", std::io::Error::from_raw_os_error(-done.result()));
            }
            if done.user_data() == 0 {
                received = Some(done.result() as usize);
            }
        }
        let Some(n) = received else { continue };
        if n == 0 {
            break;
        }
        outgoing[..n].copy_from_slice(&incoming[..n]);
        let send = opcode::Send::new(fd, outgoing.as_ptr(), n as u32).build().user_data(1);
        unsafe { ring.submission().push(&send) }.context("queue")?;
        unsafe { ring.submission().push(&receive(&mut incoming)) }.context("queue")?;
        in_flight = 2;
        messages += 1;
    }
    // The buffers must outlive the operations still queued: ending the
    // connection completes the pending receive.
    server.shutdown(std::net::Shutdown::Both)?;
    ring.submit_and_wait(in_flight)?;
    Ok(messages)
}
