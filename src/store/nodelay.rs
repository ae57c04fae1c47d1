//! `TCP_NODELAY` on the pool's Postgres connections.
//!
//! sqlx 0.9.0 stopped setting it (launchbadge/sqlx#4335; the fix, #4336, is not released yet).
//! Without it, any message larger than one TCP segment (the set-based statements of a
//! 500-result batch) stalls ~40 ms on Nagle's algorithm waiting for the server's delayed ACK,
//! several times per batch: measured, a batch took 650 ms instead of ~60 ms. sqlx does not
//! expose its socket, so after each new connection we find this process's TCP sockets
//! connected to the database's port and set the option (idempotent on the others; it is what
//! libpq and hyper do on every socket). Remove this module once sqlx sets it again.

use std::os::fd::{BorrowedFd, RawFd};

/// Set `TCP_NODELAY` on every TCP socket of this process whose peer port is `port`.
pub(super) fn set_on_connections_to(port: u16) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(raw) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is used only for getpeername and setsockopt within this
        // loop. If it was closed meanwhile both fail with EBADF (ignored); if its number was
        // reused, the option lands on another of our sockets, where it is equally harmless.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let sock = socket2::SockRef::from(&fd);
        let to_db = sock
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if to_db {
            let _ = sock.set_tcp_nodelay(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_to_the_port_get_nodelay_and_others_do_not() {
        let db = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to_db = std::net::TcpStream::connect(db.local_addr().unwrap()).unwrap();
        let to_other = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_db.nodelay().unwrap(), "off by default");
        set_on_connections_to(db.local_addr().unwrap().port());
        assert!(to_db.nodelay().unwrap());
        assert!(!to_other.nodelay().unwrap());
    }
}
