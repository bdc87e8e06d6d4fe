//! Which new connections an instance takes: the host's admission policy.
//!
//! The guest reports the bytes its allocator holds once per turn. Near the
//! memory cap, new upgrades are served without compression, then refused
//! (`503` + `Retry-After`), so that load from peers never grows the guest
//! into its cap (which would trap it and cost every connection it holds).
//! Connections already open keep working. Per client address, a cap on open
//! connections and a handshake rate keep one address from taking the whole
//! budget (`429` + `Retry-After`). The guest answers each refused upgrade
//! with the HTTP status once the request is complete, and tells the app
//! (`server-error`).

use super::batch::Admission;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// The operator's admission limits for one instance.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionLimits {
    /// The guest's memory cap in bytes (the sandbox's); the marks below are
    /// fractions of it.
    pub memory_cap: usize,
    /// Open connections one client address may hold; 0: no cap. Default 1 000.
    pub max_per_address: u32,
    /// Upgrades one client address may start per second (a bucket of as
    /// many); 0: no limit. Default 200.
    pub handshakes_per_address_per_second: u32,
    /// Apply the per-address limits to loopback peers too. Off by default:
    /// a loopback peer is a process of this machine (a local proxy, a load
    /// test), and behind a local proxy every client shares its address.
    pub limit_loopback: bool,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        Self {
            memory_cap: usize::MAX,
            max_per_address: 1_000,
            handshakes_per_address_per_second: 200,
            limit_loopback: false,
        }
    }
}

/// New upgrades go without compression once the guest's heap passes this
/// share of the cap...
const COMPRESSION_MARK: f64 = 0.50;
/// ...and are refused past this one. The rest is headroom for the
/// allocator's fragmentation and messages in flight.
const REFUSE_MARK: f64 = 0.75;
/// What a connection admitted since the guest's last report is assumed to
/// hold: a compressed connection's most while it handles a message (a crowd
/// that arrives within one turn is counted before the guest reports it).
const RESERVE_PER_NEW_CONNECTION: usize = 64 * 1024;
/// What every open connection may add to the heap when it becomes active
/// at once with all the others (a compressed connection holds ~60 KiB
/// while it handles a message, ~10 KiB once quiet): the heap the guest
/// reports is that of the moment, and a crowd that goes quiet, then speaks
/// at once, must still fit. With the default 1 GiB cap this admits ~16 000
/// connections, past the default connection cap of 10 000.
const ACTIVE_HEADROOM_PER_CONNECTION: usize = 48 * 1024;

/// The policy's state: the guest's last report and each address's count.
#[derive(Debug)]
pub struct AdmissionControl {
    limits: AdmissionLimits,
    heap: usize,
    admitted_since_report: usize,
    /// Connections decided and not yet closed.
    open: usize,
    /// Per address: kept while it holds a connection or its bucket is
    /// refilling (so opening and closing one connection at a time still
    /// spends the bucket); pruned every [`PRUNE_EVERY`] decisions.
    addresses: HashMap<IpAddr, Address>,
    decisions: u32,
}

/// How often idle addresses with a full bucket are forgotten.
const PRUNE_EVERY: u32 = 1024;

#[derive(Debug)]
struct Address {
    open: u32,
    tokens: f64,
    refilled: Instant,
}

impl AdmissionControl {
    pub fn new(limits: AdmissionLimits) -> Self {
        Self { limits, heap: 0, admitted_since_report: 0, open: 0, addresses: HashMap::new(), decisions: 0 }
    }

    /// The guest's allocator holds `heap_bytes` now.
    pub fn guest_reported(&mut self, heap_bytes: u64) {
        self.heap = usize::try_from(heap_bytes).unwrap_or(usize::MAX);
        self.admitted_since_report = 0;
    }

    /// Decides for a connection just accepted from `peer`; every decided
    /// connection is counted until [`AdmissionControl::closed`].
    pub fn decide(&mut self, peer: IpAddr, now: Instant) -> Admission {
        self.decide_with(peer, true, now)
    }

    /// [`AdmissionControl::decide`] for a trusted proxy that names its
    /// clients in their requests: its address carries many clients, so the
    /// per-address limits do not apply to it (the memory marks do).
    pub fn decide_for_proxy(&mut self, peer: IpAddr, now: Instant) -> Admission {
        self.decide_with(peer, false, now)
    }

    fn decide_with(&mut self, peer: IpAddr, address_limits: bool, now: Instant) -> Admission {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d.
        let peer = peer.to_canonical();
        self.decisions = self.decisions.wrapping_add(1);
        if self.decisions.is_multiple_of(PRUNE_EVERY) {
            // A bucket refills completely within a second.
            self.addresses.retain(|_, a| a.open > 0 || now.saturating_duration_since(a.refilled).as_secs() < 1);
        }
        let per_address = address_limits && (self.limits.limit_loopback || !peer.is_loopback());
        let rate = f64::from(self.limits.handshakes_per_address_per_second);
        let address = self.addresses.entry(peer).or_insert(Address { open: 0, tokens: rate, refilled: now });
        address.open += 1;
        self.open += 1;
        if per_address {
            if rate > 0.0 {
                let elapsed = now.saturating_duration_since(address.refilled).as_secs_f64();
                address.tokens = (address.tokens + elapsed * rate).min(rate);
                address.refilled = now;
            }
            let over_cap = self.limits.max_per_address > 0 && address.open > self.limits.max_per_address;
            let too_fast = rate > 0.0 && address.tokens < 1.0;
            if over_cap || too_fast {
                return Admission::RefuseAddress;
            }
            address.tokens -= 1.0;
        }
        let projected = self
            .heap
            .saturating_add(self.admitted_since_report * RESERVE_PER_NEW_CONNECTION)
            .saturating_add(self.open * ACTIVE_HEADROOM_PER_CONNECTION);
        let cap = self.limits.memory_cap as f64;
        if projected as f64 >= cap * REFUSE_MARK {
            return Admission::RefuseBusy;
        }
        self.admitted_since_report += 1;
        if projected as f64 >= cap * COMPRESSION_MARK { Admission::AdmitUncompressed } else { Admission::Admit }
    }

    /// A connection from `peer` ended.
    pub fn closed(&mut self, peer: IpAddr) {
        self.open = self.open.saturating_sub(1);
        if let Some(address) = self.addresses.get_mut(&peer.to_canonical()) {
            address.open = address.open.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: usize = 1024 * 1024;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn memory_marks_turn_compression_off_then_refuse() {
        let mut a = AdmissionControl::new(AdmissionLimits { memory_cap: 100 * MIB, ..AdmissionLimits::default() });
        let now = Instant::now();
        a.guest_reported(10 * MIB as u64);
        assert_eq!(a.decide(ip("10.0.0.1"), now), Admission::Admit);
        a.guest_reported(60 * MIB as u64);
        assert_eq!(a.decide(ip("10.0.0.2"), now), Admission::AdmitUncompressed);
        a.guest_reported(80 * MIB as u64);
        assert_eq!(a.decide(ip("10.0.0.3"), now), Admission::RefuseBusy);
        // Connections admitted since the last report count before it comes,
        // and every open one keeps room to become active.
        a.guest_reported(72 * MIB as u64);
        let decisions: Vec<Admission> = (0..40).map(|i| a.decide(ip(&format!("10.0.1.{i}")), now)).collect();
        assert_eq!(decisions[0], Admission::AdmitUncompressed);
        assert_eq!(decisions[39], Admission::RefuseBusy);
        let mut idle = AdmissionControl::new(AdmissionLimits { memory_cap: 100 * MIB, ..AdmissionLimits::default() });
        let admitted = (0..2_000u32)
            .take_while(|i| {
                idle.guest_reported(0);
                idle.decide(IpAddr::from(i.to_be_bytes()), now) != Admission::RefuseBusy
            })
            .count();
        // The deciding connection counts itself: the 1 600th is refused.
        assert_eq!(admitted, 75 * 1024 / 48 - 1, "an idle crowd is admitted while all of it could become active");
    }

    #[test]
    fn one_address_is_capped_in_count_and_rate_but_loopback_is_not_by_default() {
        let limits = AdmissionLimits { max_per_address: 3, handshakes_per_address_per_second: 0, ..Default::default() };
        let mut a = AdmissionControl::new(limits);
        let now = Instant::now();
        let peer = ip("192.0.2.7");
        let d: Vec<Admission> = (0..4).map(|_| a.decide(peer, now)).collect();
        assert_eq!(d, [Admission::Admit, Admission::Admit, Admission::Admit, Admission::RefuseAddress]);
        assert_eq!(a.decide(ip("192.0.2.8"), now), Admission::Admit, "another address is not affected");
        a.closed(peer);
        a.closed(peer);
        assert_eq!(a.decide(peer, now), Admission::Admit, "a closed connection frees its place");
        assert!((0..10).all(|_| a.decide(ip("127.0.0.1"), now) == Admission::Admit));

        let limits = AdmissionLimits { max_per_address: 0, handshakes_per_address_per_second: 5, ..Default::default() };
        let mut a = AdmissionControl::new(limits);
        let d: Vec<Admission> = (0..6).map(|_| a.decide(peer, now)).collect();
        assert_eq!(d[4], Admission::Admit);
        assert_eq!(d[5], Admission::RefuseAddress, "a burst past the rate is refused");
        assert_eq!(a.decide(peer, now + Duration::from_millis(250)), Admission::Admit, "the bucket refills");
        // Opening and closing one at a time spends the bucket too.
        let mut a = AdmissionControl::new(limits);
        let d: Vec<Admission> = (0..6)
            .map(|_| {
                let d = a.decide(peer, now);
                a.closed(peer);
                d
            })
            .collect();
        assert_eq!(d[5], Admission::RefuseAddress, "one at a time, still too fast");
        // A mapped IPv4 loopback peer is loopback.
        let mut a = AdmissionControl::new(AdmissionLimits { max_per_address: 1, ..Default::default() });
        assert!((0..3).all(|_| a.decide(ip("::ffff:127.0.0.1"), now) == Admission::Admit));
    }
}
