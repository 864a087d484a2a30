//! Who may hold a connection: a cap in total and a cap per client address.
//!
//! A connection beyond its client's cap waits, unread, for one of that
//! client's places, for at most the header-read timeout. Alertmanager
//! opens a connection per group it flushes, so a storm of 1,000 groups comes
//! as 1,000 connections from one address. Closing those at once made
//! Alertmanager retry hundreds of notifications a second later, which cost
//! both sides CPU for nothing (docs/benchmarks.md).
//!
//! Waiting costs no buffer here: the request stays in the socket until a
//! place frees. While any connection of a client waits, each answer to that
//! client says `Connection: close`, so its places turn over one request at a
//! time. (Closing an idle keep-alive connection instead races with the
//! client reusing it: Go's client then fails the POST with EOF, and
//! Alertmanager retries it.)
//!
//! At most `max_total` connections wait, in a room of their own: a client
//! that floods fills that room and nothing else, so it still cannot take
//! another client's places. Beyond the room, and beyond the total cap, a
//! connection is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection was closed without being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// `max_total` connections were being served.
    Total,
    /// Its client held all its places and the waiting room was full.
    PerClient,
    /// It waited the whole header-read timeout for one of its client's places.
    WaitedTooLong,
}

impl Refused {
    /// The `reason` label of `connections_refused_total`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Refused::Total => "max_connections",
            Refused::PerClient => "max_connections_per_client",
            Refused::WaitedTooLong => "max_connections_per_client_wait",
        }
    }
}

/// The caps of one listener, and who holds what now.
#[derive(Debug)]
pub(super) struct Admission {
    /// Connections served at once; as many again may wait.
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    /// Connections being served.
    served: usize,
    /// Connections waiting for a place of their client.
    waiting: usize,
    clients: HashMap<IpAddr, Client>,
}

#[derive(Debug)]
struct Client {
    places: Arc<Places>,
    /// Its connections, served or waiting: the entry goes with the last.
    connections: usize,
}

/// One client's places, and how many of its connections wait for one.
#[derive(Debug)]
struct Places {
    free: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// A connection counted against its client; uncounts it on drop.
#[derive(Debug)]
struct Registration {
    admission: Arc<Admission>,
    client: IpAddr,
    places: Arc<Places>,
}

/// Held by a connection being served; gives its place back on drop.
#[derive(Debug)]
pub(super) struct Slot {
    _place: OwnedSemaphorePermit,
    registration: Registration,
}

/// Tells a served connection whether others of its client wait for a place.
#[derive(Debug, Clone)]
pub(super) struct Waiters(Arc<Places>);

/// A connection waiting for a place ([`Waiting::place`]).
#[derive(Debug)]
pub(super) struct Waiting {
    /// Taken when the wait ends; while it is here, the connection counts as waiting.
    registration: Option<Registration>,
}

/// What [`Admission::admit`] decided.
#[derive(Debug)]
pub(super) enum Admitted {
    /// Served now.
    Now(Slot),
    /// Beyond its client's cap: may wait for a place.
    Wait(Waiting),
}

impl Admission {
    pub(super) fn new(max_total: usize, max_per_client: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_client,
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // A poisoned lock only means a panic elsewhere mid-update; the counts
        // are still the best we have.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides for a new connection from `client`.
    pub(super) fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Admitted, Refused> {
        let mut open = self.lock();
        if open.served >= self.max_total {
            return Err(Refused::Total);
        }
        let max_per_client = self.max_per_client;
        let places = open
            .clients
            .get(&client)
            .map(|c| c.places.clone())
            .unwrap_or_else(|| {
                Arc::new(Places {
                    free: Arc::new(Semaphore::new(max_per_client)),
                    waiting: AtomicUsize::new(0),
                })
            });
        let place = places.free.clone().try_acquire_owned();
        if place.is_err() && open.waiting >= self.max_total {
            return Err(Refused::PerClient);
        }
        open.clients
            .entry(client)
            .or_insert_with(|| Client {
                places: places.clone(),
                connections: 0,
            })
            .connections += 1;
        let registration = Registration {
            admission: self.clone(),
            client,
            places,
        };
        Ok(match place {
            Ok(place) => {
                open.served += 1;
                Admitted::Now(Slot {
                    _place: place,
                    registration,
                })
            }
            Err(_) => {
                open.waiting += 1;
                registration.places.waiting.fetch_add(1, Ordering::Relaxed);
                Admitted::Wait(Waiting {
                    registration: Some(registration),
                })
            }
        })
    }
}

impl Waiting {
    /// Waits at most `within` for a place of this client.
    pub(super) async fn place(mut self, within: Duration) -> Result<Slot, Refused> {
        let Some(free) = self.registration.as_ref().map(|r| r.places.free.clone()) else {
            return Err(Refused::WaitedTooLong);
        };
        // Cancelled here (the listener drains), `self` still holds the
        // registration, and its drop uncounts the wait.
        let place = tokio::time::timeout(within, free.acquire_owned()).await;
        let Some(registration) = self.registration.take() else {
            return Err(Refused::WaitedTooLong);
        };
        let mut open = registration.admission.lock();
        open.waiting = open.waiting.saturating_sub(1);
        registration.places.waiting.fetch_sub(1, Ordering::Relaxed);
        // The semaphore is never closed, so only the timeout fails.
        let Ok(Ok(place)) = place else {
            return Err(Refused::WaitedTooLong);
        };
        if open.served >= registration.admission.max_total {
            return Err(Refused::Total);
        }
        open.served += 1;
        drop(open);
        Ok(Slot {
            _place: place,
            registration,
        })
    }
}

impl Slot {
    /// What this connection's answers consult ([`Waiters::any`]).
    pub(super) fn waiters(&self) -> Waiters {
        Waiters(self.registration.places.clone())
    }
}

impl Waiters {
    /// True while a connection of the same client waits for a place: this
    /// one should close after its answer.
    pub(super) fn any(&self) -> bool {
        self.0.waiting.load(Ordering::Relaxed) > 0
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        // Dropped while still waiting (the listener is draining).
        if let Some(registration) = &self.registration {
            let mut open = registration.admission.lock();
            open.waiting = open.waiting.saturating_sub(1);
            registration.places.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.registration.admission.lock();
        open.served = open.served.saturating_sub(1);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        if let Some(c) = open.clients.get_mut(&self.client) {
            c.connections = c.connections.saturating_sub(1);
            if c.connections == 0 {
                // Keeps the map as small as the set of clients connected now.
                open.clients.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn now(admitted: Result<Admitted, Refused>) -> Slot {
        match admitted {
            Ok(Admitted::Now(slot)) => slot,
            other => panic!("not served at once: {other:?}"),
        }
    }

    fn waits(admitted: Result<Admitted, Refused>) -> Waiting {
        match admitted {
            Ok(Admitted::Wait(w)) => w,
            other => panic!("does not wait: {other:?}"),
        }
    }

    #[test]
    fn one_client_beyond_its_cap_waits_and_does_not_take_the_places_of_another() {
        let admission = Admission::new(3, 2);
        let _a1 = now(admission.admit(A));
        let _a2 = now(admission.admit(A));
        let _a3 = waits(admission.admit(A));
        let _b1 = now(admission.admit(B));
        assert_eq!(admission.admit(B).unwrap_err(), Refused::Total);
    }

    #[test]
    fn beyond_the_waiting_room_a_connection_is_refused_at_once() {
        let admission = Admission::new(2, 1);
        let _a1 = now(admission.admit(A));
        let _w1 = waits(admission.admit(A));
        let _w2 = waits(admission.admit(A));
        assert_eq!(admission.admit(A).unwrap_err(), Refused::PerClient);
        // The room is full for every client, but B's own place is free.
        let _b1 = now(admission.admit(B));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_connection_takes_the_first_place_its_client_gives_back() {
        let admission = Admission::new(10, 1);
        let a1 = now(admission.admit(A));
        let b1 = now(admission.admit(B));
        let waiters = a1.waiters();
        assert!(!waiters.any());
        let waiting = waits(admission.admit(A));
        // A's served connection should close after its answer; B's need not.
        assert!(waiters.any());
        assert!(!b1.waiters().any());
        let (placed, ()) = tokio::join!(waiting.place(Duration::from_secs(10)), async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(a1);
        });
        let a2 = placed.unwrap();
        assert!(!a2.waiters().any());
        let open = admission.lock();
        assert_eq!((open.served, open.waiting), (2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_gets_no_place_in_time_is_refused_and_uncounted() {
        let admission = Admission::new(10, 1);
        let a1 = now(admission.admit(A));
        let waiting = waits(admission.admit(A));
        let refused = waiting.place(Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(refused, Refused::WaitedTooLong);
        drop(a1);
        let open = admission.lock();
        assert_eq!((open.served, open.waiting), (0, 0));
        assert!(open.clients.is_empty(), "{:?}", open.clients);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_cut_short_by_draining_is_uncounted() {
        let admission = Admission::new(2, 1);
        let a1 = now(admission.admit(A));
        let waiting = waits(admission.admit(A));
        let cut = tokio::time::timeout(
            Duration::from_secs(1),
            waiting.place(Duration::from_secs(10)),
        );
        assert!(cut.await.is_err());
        assert!(!a1.waiters().any());
        let open = admission.lock();
        assert_eq!((open.served, open.waiting), (1, 0));
        assert_eq!(open.clients[&A].connections, 1);
    }

    #[test]
    fn closed_connections_give_their_places_back_and_forget_the_client() {
        let admission = Admission::new(10, 1);
        let slot = now(admission.admit(A));
        let waiting = waits(admission.admit(A));
        drop(waiting);
        drop(slot);
        let open = admission.lock();
        assert_eq!((open.served, open.waiting), (0, 0));
        assert!(open.clients.is_empty());
    }
}
