//! The agent's one error type.

/// Everything that can stop the agent from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or wrong; the message names it.
    #[error("configuration error: {0}")]
    Config(String),
    /// Binding or serving a listener failed.
    #[error("cannot serve on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `whoami` found a problem; the message names the missing piece.
    #[error("{0}")]
    Whoami(String),
}
