//! The host TCP transport's receive hints ([`RecvHint`]): the low-water-mark wait for the rest
//! of a data segment, the vectored receive with its wait for the PDUs a plan expects, and busy
//! polling, on real loopback sockets; and which hints and plans the `Client` gives, recorded
//! on a real session with tgtd.
#![cfg(feature = "std")]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use common::*;
use iscsi_initiator::negotiate::DigestChoice;
use iscsi_initiator::scsi::{Cdb, Lun, ScsiStatus};
use iscsi_initiator::session::{Completion, Direction, Portal};
use iscsi_initiator::transport::{Received, RecvHint, TcpTransport, Transport};
use iscsi_initiator::Duration;

const SECOND: Duration = Duration::from_secs(1);

/// What the server end writes: (bytes, pause after in ms).
type Feed = mpsc::Sender<(Vec<u8>, u64)>;

/// A connected transport and the server's end, which the test writes through a channel of
/// (bytes, pause after) pairs; dropping the sender closes the connection.
fn pair() -> (TcpTransport, Feed, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel::<(Vec<u8>, u64)>();
    let server = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        for (bytes, pause_ms) in rx {
            s.write_all(&bytes).unwrap();
            thread::sleep(StdDuration::from_millis(pause_ms));
        }
    });
    let mut t = TcpTransport::new();
    let portal = Portal {
        host: "127.0.0.1".into(),
        port,
    };
    assert!(t.connect(&portal, Duration::from_secs(5)));
    (t, tx, server)
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// CPU time of the calling thread.
fn thread_cpu() -> StdDuration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec for the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    assert_eq!(r, 0);
    StdDuration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A 128 KiB segment that arrives in four pieces, 60 ms apart.
fn segment_in_four_pieces(seed: u8) -> (TcpTransport, Feed, thread::JoinHandle<()>, Vec<u8>) {
    let (t, tx, server) = pair();
    let segment = bytes(128 * 1024, seed);
    for piece in segment.chunks(32 * 1024) {
        tx.send((piece.to_vec(), 60)).unwrap();
    }
    (t, tx, server, segment)
}

#[test]
fn low_water_mark_returns_the_whole_segment_in_one_receive() {
    let (mut t, tx, server, segment) = segment_in_four_pieces(1);
    let mut buf = vec![0u8; segment.len()];
    let start = StdInstant::now();
    let hint = RecvHint {
        min: segment.len(),
        busy_poll_us: 0,
        ..RecvHint::default()
    };
    match t.recv_hinted(&mut buf, Duration::from_secs(5), hint) {
        Received::Data(n) => assert_eq!(n, segment.len(), "one receive, all of it"),
        other => panic!("{other:?}"),
    }
    assert!(
        start.elapsed() >= StdDuration::from_millis(150),
        "it waited"
    );
    assert_eq!(buf, segment);

    // Without a hint any data will do again: a lone 48-byte header is returned at once (a
    // low-water mark left behind would hold it until the timeout).
    tx.send((bytes(48, 2), 0)).unwrap();
    let start = StdInstant::now();
    let mut small = [0u8; 4096];
    match t.recv(&mut small, Duration::from_secs(5)) {
        Received::Data(n) => assert_eq!(&small[..n], &bytes(48, 2)[..]),
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < StdDuration::from_secs(2));
    drop(tx);
    server.join().unwrap();
}

#[test]
fn without_the_hint_the_first_piece_comes_alone() {
    // The control for the test above: the same arrivals, read without a hint.
    let (mut t, tx, server, segment) = segment_in_four_pieces(3);
    let mut buf = vec![0u8; segment.len()];
    match t.recv(&mut buf, Duration::from_secs(5)) {
        Received::Data(n) => assert!(n < segment.len(), "got {n}"),
        other => panic!("{other:?}"),
    }
    drop(tx);
    server.join().unwrap();
}

#[test]
fn low_water_mark_wait_is_bounded_and_loses_nothing() {
    let (mut t, tx, server) = pair();
    let segment = bytes(64 * 1024, 4);
    tx.send((segment[..10_000].to_vec(), 0)).unwrap();
    let mut buf = vec![0u8; segment.len()];
    let hint = RecvHint {
        min: segment.len(),
        busy_poll_us: 0,
        ..RecvHint::default()
    };
    let start = StdInstant::now();
    assert_eq!(
        t.recv_hinted(&mut buf, Duration::from_millis(200), hint),
        Received::Timeout
    );
    let waited = start.elapsed();
    assert!(
        waited >= StdDuration::from_millis(150) && waited < StdDuration::from_secs(2),
        "{waited:?}"
    );
    // The rest comes; nothing of the first part was lost.
    tx.send((segment[10_000..].to_vec(), 0)).unwrap();
    let mut got = 0;
    while got < segment.len() {
        match t.recv_hinted(&mut buf[got..], Duration::from_secs(5), hint) {
            Received::Data(n) => got += n,
            other => panic!("{other:?} after {got}"),
        }
    }
    assert_eq!(buf, segment);
    // The peer closing ends a low-water-mark wait at once.
    drop(tx);
    server.join().unwrap();
    let start = StdInstant::now();
    assert_eq!(
        t.recv_hinted(&mut buf, Duration::from_secs(5), hint),
        Received::Closed
    );
    assert!(start.elapsed() < StdDuration::from_secs(2));
}

#[test]
fn busy_poll_spins_for_its_budget_then_sleeps() {
    let (mut t, tx, server) = pair();
    let mut buf = [0u8; 4096];
    let spin = RecvHint {
        min: 1,
        busy_poll_us: 200_000,
        ..RecvHint::default()
    };
    // Nothing arrives: 200 ms of polling on the CPU, then an ordinary wait until the timeout.
    let cpu = thread_cpu();
    let start = StdInstant::now();
    assert_eq!(
        t.recv_hinted(&mut buf, Duration::from_millis(300), spin),
        Received::Timeout
    );
    let (spun, waited) = (thread_cpu() - cpu, start.elapsed());
    assert!(waited >= StdDuration::from_millis(300), "{waited:?}");
    assert!(
        // A tenth of the budget: on a loaded machine the poller shares its core (seen: a fifth
        // with two CPU hogs and a build on two cores). A sleeping wait takes well under 5 ms.
        spun >= StdDuration::from_millis(20),
        "polled on the CPU: {spun:?}"
    );
    // The same wait without polling sleeps.
    let cpu = thread_cpu();
    assert_eq!(
        t.recv_hinted(&mut buf, Duration::from_millis(100), RecvHint::default()),
        Received::Timeout
    );
    assert!(thread_cpu() - cpu < StdDuration::from_millis(5));

    // Data arriving during the poll is returned by it.
    tx.send((bytes(100, 5), 0)).unwrap();
    match t.recv_hinted(&mut buf, SECOND, spin) {
        Received::Data(n) => assert_eq!(&buf[..n], &bytes(100, 5)[..]),
        other => panic!("{other:?}"),
    }
    // And so is the peer closing.
    drop(tx);
    server.join().unwrap();
    assert_eq!(t.recv_hinted(&mut buf, SECOND, spin), Received::Closed);
}

/// Receive into three buffers (`sure` bytes, a 48-byte header, the rest) with a wait for all.
fn recv_three(
    t: &mut TcpTransport,
    sure: usize,
    total: usize,
    likely_wait: Duration,
) -> (Received, Vec<u8>) {
    let mut a = vec![0u8; sure];
    let mut h = [0u8; 48];
    let mut b = vec![0u8; total - sure - 48];
    let hint = RecvHint {
        min: sure,
        likely: total,
        likely_wait,
        ..RecvHint::default()
    };
    // A long timeout: settling after the likely wait must show as far shorter on any machine.
    let r = t.recv_vectored(&mut [&mut a, &mut h, &mut b], Duration::from_secs(30), hint);
    let mut all = a;
    all.extend_from_slice(&h);
    all.extend_from_slice(&b);
    (r, all)
}

#[test]
fn a_receive_waits_briefly_for_a_batch_then_takes_what_is_there() {
    let (mut t, tx, server) = pair();
    let data = bytes(3000, 9);
    for piece in data.chunks(1000) {
        tx.send((piece.to_vec(), 60)).unwrap();
    }
    let mut buf = vec![0u8; 64 * 1024];
    let batch = |likely_wait| RecvHint {
        min: 1,
        likely: 3000,
        likely_wait,
        ..RecvHint::default()
    };
    let start = StdInstant::now();
    let r = t.recv_hinted(
        &mut buf,
        Duration::from_secs(5),
        batch(Duration::from_secs(2)),
    );
    assert_eq!(r, Received::Data(3000), "the batch in one receive");
    assert!(
        start.elapsed() >= StdDuration::from_millis(100),
        "it waited"
    );
    assert_eq!(buf[..3000], data[..]);
    thread::sleep(StdDuration::from_millis(100));
    // Without the wait, the first piece comes alone (the control).
    for piece in data.chunks(1000) {
        tx.send((piece.to_vec(), 60)).unwrap();
    }
    let mut got = match t.recv_hinted(&mut buf, Duration::from_secs(5), batch(Duration::ZERO)) {
        Received::Data(n) => n,
        other => panic!("{other:?}"),
    };
    assert!(got < 3000, "got {got}");
    while got < 3000 {
        match t.recv(&mut buf[got..], Duration::from_secs(5)) {
            Received::Data(n) => got += n,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(buf[..3000], data[..]);
    // A batch that does not come: what is there, after the wait and not at the timeout.
    tx.send((data[..500].to_vec(), 0)).unwrap();
    let start = StdInstant::now();
    let r = t.recv_hinted(
        &mut buf,
        Duration::from_secs(30),
        batch(Duration::from_millis(100)),
    );
    let waited = start.elapsed();
    assert_eq!(r, Received::Data(500));
    assert!(
        waited >= StdDuration::from_millis(90) && waited < StdDuration::from_secs(20),
        "{waited:?}"
    );
    drop(tx);
    server.join().unwrap();
}

#[test]
fn vectored_receive_waits_for_the_likely_bytes_and_fills_the_buffers_in_order() {
    let (mut t, tx, server, segment) = segment_in_four_pieces(6);
    let start = StdInstant::now();
    let (r, got) = recv_three(&mut t, 32 * 1024, segment.len(), Duration::from_secs(2));
    assert_eq!(r, Received::Data(segment.len()), "one receive, all of it");
    assert!(
        start.elapsed() >= StdDuration::from_millis(150),
        "it waited"
    );
    assert_eq!(got, segment);
    drop(tx);
    server.join().unwrap();
}

#[test]
fn vectored_receive_without_a_likely_wait_takes_the_sure_bytes() {
    // The control for the test above: the same arrivals, no wait for the likely bytes.
    let (mut t, tx, server, segment) = segment_in_four_pieces(7);
    let (r, got) = recv_three(&mut t, 32 * 1024, segment.len(), Duration::ZERO);
    let Received::Data(n) = r else {
        panic!("{r:?}")
    };
    assert!(n >= 32 * 1024 && n < segment.len(), "got {n}");
    assert_eq!(got[..n], segment[..n]);
    drop(tx);
    server.join().unwrap();
}

#[test]
fn the_likely_wait_ends_and_settles_for_the_sure_bytes() {
    // Only the sure bytes come (the target ended the task early): the receive returns them
    // after the likely wait, not at the timeout, and what comes later is the next receive's.
    let (mut t, tx, server) = pair();
    let data = bytes(100 * 1024, 8);
    tx.send((data[..32 * 1024].to_vec(), 0)).unwrap();
    let start = StdInstant::now();
    let (r, got) = recv_three(&mut t, 32 * 1024, data.len(), Duration::from_millis(100));
    let waited = start.elapsed();
    assert_eq!(r, Received::Data(32 * 1024));
    assert_eq!(got[..32 * 1024], data[..32 * 1024]);
    assert!(
        waited >= StdDuration::from_millis(90) && waited < StdDuration::from_secs(20),
        "{waited:?}"
    );
    tx.send((data[32 * 1024..].to_vec(), 0)).unwrap();
    let mut rest = vec![0u8; data.len() - 32 * 1024];
    let mut n = 0;
    while n < rest.len() {
        match t.recv(&mut rest[n..], Duration::from_secs(5)) {
            Received::Data(k) => n += k,
            other => panic!("{other:?} after {n}"),
        }
    }
    assert_eq!(rest, data[32 * 1024..]);
    drop(tx);
    server.join().unwrap();
}

/// Records the hints the `Client` gives, then receives as the host transport does.
#[derive(Debug)]
struct Recording {
    inner: TcpTransport,
    hints: Vec<(usize, RecvHint)>,
    /// The buffer lengths of each vectored receive.
    vectored: Vec<Vec<usize>>,
    /// Receive less than a batch the `Client` waits for, at once.
    starve_batches: bool,
}

impl Transport for Recording {
    fn connect(&mut self, portal: &Portal, timeout: Duration) -> bool {
        self.inner.connect(portal, timeout)
    }
    fn close(&mut self) {
        self.inner.close()
    }
    fn send(&mut self, data: &[u8]) -> Option<usize> {
        self.inner.send(data)
    }
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Received {
        self.recv_hinted(buf, timeout, RecvHint::default())
    }
    fn recv_hinted(&mut self, buf: &mut [u8], timeout: Duration, hint: RecvHint) -> Received {
        self.hints.push((buf.len(), hint));
        if self.starve_batches && hint.likely > 1 {
            // A batch that never comes in time: fewer bytes than expected, at once.
            let len = buf.len().min(hint.likely - 1);
            let plain = RecvHint { likely: 0, ..hint };
            return self.inner.recv_hinted(&mut buf[..len], timeout, plain);
        }
        self.inner.recv_hinted(buf, timeout, hint)
    }
    fn recv_vectored(
        &mut self,
        bufs: &mut [&mut [u8]],
        timeout: Duration,
        hint: RecvHint,
    ) -> Received {
        self.hints.push((bufs.first().map_or(0, |b| b.len()), hint));
        self.vectored.push(bufs.iter().map(|b| b.len()).collect());
        self.inner.recv_vectored(bufs, timeout, hint)
    }
}

#[test]
fn client_hints_low_water_marks_for_large_data_and_polls_only_at_queue_depth_one() {
    let t = Tgtd::start(TargetOpts::disk(16 * 1024 * 1024));
    let mut c = recording_client(&t);
    let lun = Lun::from_number(1);
    c.set_busy_poll(200);

    // One 1 MiB read, alone: every receive may poll, and its data segments are awaited whole.
    c.transport_mut().hints.clear();
    let (o, buf) = c
        .execute(
            lun,
            Cdb::read(0, 2048),
            Direction::Read,
            vec![0; 1 << 20],
            1 << 20,
        )
        .expect("read");
    assert_eq!(o.status, ScsiStatus::GOOD);
    assert_eq!(buf, read_image(&t.image, 0, 1 << 20));
    let hints = std::mem::take(&mut c.transport_mut().hints);
    assert!(
        hints.iter().all(|(_, h)| h.busy_poll_us == 200),
        "{hints:?}"
    );
    assert!(
        hints
            .iter()
            .any(|(len, h)| h.min >= 32 * 1024 && h.min == *len),
        "a low-water mark for the rest of a segment: {hints:?}"
    );
    assert!(hints.iter().all(|(len, h)| h.min >= 1 && h.min <= *len));
    // tgtd sends 1 MiB as four 256 KiB PDUs: once the first header is in, one receive is
    // planned across the rest of the task (the segment, then header and segment three times,
    // then room for what follows), expecting all of it.
    let vectored = std::mem::take(&mut c.transport_mut().vectored);
    assert!(
        vectored.iter().any(|lens| lens.len() == 8
            && lens[1..7].iter().step_by(2).all(|&l| l == 48)
            && lens.iter().sum::<usize>() >= (3 << 18) + 3 * 48),
        "{vectored:?}"
    );
    assert!(
        hints.iter().any(|(_, h)| h.likely > h.min + (3 << 18)),
        "{hints:?}"
    );

    // Four reads in flight: no polling while more than one is outstanding.
    let polled_with: Vec<(usize, u32)> = reads_in_flight(&mut c, &t.image, 4)
        .iter()
        .map(|&(out, _, h)| (out, h.busy_poll_us))
        .collect();
    assert!(
        polled_with.iter().all(|&(n, us)| (n > 1) == (us == 0)),
        "{polled_with:?}"
    );
    assert!(polled_with.iter().any(|&(n, _)| n > 1), "{polled_with:?}");
}

type RecordingClient =
    iscsi_initiator::transport::Client<Recording, iscsi_initiator::transport::StdClock>;

/// A `Client` over a recording transport, logged in to `t`.
fn recording_client(t: &Tgtd) -> RecordingClient {
    let transport = Recording {
        inner: TcpTransport::new(),
        hints: Vec::new(),
        vectored: Vec::new(),
        starve_batches: false,
    };
    let login = login_config(Some(IQN), None, DigestChoice::None);
    let mut c = client_over(transport, t.port, login, |_| {});
    c.login(Duration::from_secs(15)).expect("login");
    c
}

/// Run `n` 4 KiB reads at once to completion; returns each receive's hint with the number of
/// commands outstanding when it was made.
fn reads_in_flight(
    c: &mut RecordingClient,
    image: &std::path::Path,
    n: u64,
) -> Vec<(usize, usize, RecvHint)> {
    let lun = Lun::from_number(1);
    let mut handles = Vec::new();
    for i in 0..n {
        let h = c
            .session_mut()
            .submit(
                lun,
                Cdb::read(i * 8, 8),
                Direction::Read,
                vec![0; 4096],
                4096,
            )
            .map_err(|(e, _)| e)
            .expect("submit");
        handles.push(h);
    }
    let mut seen = Vec::new();
    let mut done = 0;
    let deadline = StdInstant::now() + StdDuration::from_secs(10);
    while done < n {
        assert!(StdInstant::now() < deadline, "reads did not complete");
        let outstanding = c.session().outstanding();
        let before = c.transport_mut().hints.len();
        c.step(Duration::from_millis(100));
        for &(len, h) in &c.transport_mut().hints[before..] {
            seen.push((outstanding, len, h));
        }
        while let Some(comp) = c.next_completion() {
            if let Completion::Command {
                handle,
                result,
                buffer,
            } = comp
            {
                assert_eq!(result.expect("read").status, ScsiStatus::GOOD);
                let i = handles.iter().position(|&h| h == handle).unwrap() as u64;
                assert!(
                    buffer.into_vec() == read_image(image, i * 4096, 4096),
                    "read {i}"
                );
                done += 1;
            }
        }
    }
    seen
}

#[test]
fn client_waits_for_answers_in_batches_and_backs_off_when_they_are_late() {
    let t = Tgtd::start(TargetOpts::disk(16 * 1024 * 1024));
    let mut c = recording_client(&t);

    // 32 reads at the target: the Client waits for a quarter of their answers (at most 32 x
    // (48 + 4096) / 4 bytes, at least two answers), never for more than the buffer holds, and
    // not once fewer than 8 are at the target.
    let seen = reads_in_flight(&mut c, &t.image, 32);
    let answer = 48 + 4096;
    assert!(
        seen.iter()
            .any(|&(_, _, h)| h.likely >= 2 * answer && h.likely <= 8 * answer),
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .all(|&(out, len, h)| h.likely <= len && (h.likely == 0 || out >= 8)));
    assert!(seen
        .iter()
        .all(|&(_, _, h)| h.likely == 0 || h.likely_wait > Duration::ZERO));

    // The answers never come in time: after the first short batch, the next 64 receives do
    // not wait for one.
    // (A batch late in the first part, on a loaded machine, may have started a back-off
    // already, and a round of 32 answers may take a single receive: run rounds until one is
    // waited for.)
    c.transport_mut().starve_batches = true;
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen.extend(reads_in_flight(&mut c, &t.image, 32));
        if seen[..seen.len() - 1].iter().any(|&(_, _, h)| h.likely > 0) {
            break;
        }
    }
    let first = seen
        .iter()
        .position(|&(_, _, h)| h.likely > 0)
        .expect("a batch was waited for");
    let after: Vec<usize> = seen[first + 1..]
        .iter()
        .map(|&(_, _, h)| h.likely)
        .collect();
    assert!(!after.is_empty(), "{seen:?}");
    assert!(after.iter().take(64).all(|&l| l == 0), "{after:?}");
}
