//! Routing one alert: the routes that match, their sinks, and what their
//! mutes hold back from people's sinks.

use alert_envelope::{Envelope, Muted};
use jiff::Timestamp;

use super::{RoutingTable, is_machines};

/// Why each route is muted at one moment, and until when (`None`: it is not).
#[derive(Debug, Clone, Default)]
pub struct Mutes(Vec<Option<(String, Option<Timestamp>)>>);

/// The decision for one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Names of the routes that matched, in order (empty: the default route).
    pub routes: Vec<String>,
    /// Sinks, each once, in first-mentioned order.
    pub sinks: Vec<String>,
    /// The first mute of a matched route that held people's sinks back
    /// (those not in `sinks`).
    pub muted: Option<Muted>,
    /// The matched routes, by index, that have a storm or flap rule and
    /// were not muted.
    pub noisy: Vec<usize>,
}

impl RoutingTable {
    /// Where one alert goes now.
    pub fn route(&self, env: &Envelope) -> Decision {
        self.route_at(env, Timestamp::now())
    }

    /// Where one alert goes at `at`: a route muted then gives only its SNS
    /// sinks, and the decision says why.
    pub fn route_at(&self, env: &Envelope, at: Timestamp) -> Decision {
        self.route_with(env, &self.mutes_at(at))
    }

    /// Every route's mute at `at`, in route order. The same for all the
    /// envelopes of a batch: a batch asks once, and each envelope is routed
    /// with [`RoutingTable::route_with`].
    pub fn mutes_at(&self, at: Timestamp) -> Mutes {
        Mutes(self.routes.iter().map(|r| r.muted_at(at)).collect())
    }

    /// Where one alert goes, with the routes' mutes of one moment.
    pub fn route_with(&self, env: &Envelope, mutes: &Mutes) -> Decision {
        let mut decision = Decision {
            routes: Vec::new(),
            sinks: Vec::new(),
            muted: None,
            noisy: Vec::new(),
        };
        let mut held: Vec<String> = Vec::new();
        let add = |sinks: &[String], d: &mut Decision| {
            for s in sinks {
                if !d.sinks.contains(s) {
                    d.sinks.push(s.clone());
                }
            }
        };
        for (index, (route, mute)) in self.routes.iter().zip(&mutes.0).enumerate() {
            if route.matches(env) {
                decision.routes.push(route.name.clone());
                match mute.clone() {
                    None => {
                        add(&route.sinks, &mut decision);
                        if route.storm.is_some() || route.flap.is_some() {
                            decision.noisy.push(index);
                        }
                    }
                    Some((reason, until)) => {
                        let (machines, people): (Vec<String>, Vec<String>) = route
                            .sinks
                            .iter()
                            .cloned()
                            .partition(|s| self.is_machines(s));
                        add(&machines, &mut decision);
                        held.extend(people);
                        decision.muted.get_or_insert(Muted {
                            reason,
                            until,
                            sinks: Vec::new(),
                        });
                    }
                }
                if !route.continue_matching {
                    break;
                }
            }
        }
        if decision.routes.is_empty() {
            add(&self.default, &mut decision);
        }
        if let Some(m) = &mut decision.muted {
            // A sink an unmuted route also takes is not held back.
            for s in held {
                if !decision.sinks.contains(&s) && !m.sinks.contains(&s) {
                    m.sinks.push(s);
                }
            }
        }
        if decision.muted.as_ref().is_some_and(|m| m.sinks.is_empty()) {
            decision.muted = None;
        }
        decision
    }

    /// Whether `sink` is a machines' sink (SNS, EventBridge): never muted.
    pub fn is_machines(&self, sink: &str) -> bool {
        is_machines(&self.sinks, sink)
    }
}
