//! The listener a simulator serves on ([`cadre_sim::bind`]): a fan-out's
//! burst of connections fits in its accept queue.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// More connections than `TcpListener::bind`'s queue of 128 (and than the
/// 512 calls of the largest fan-out benchmark), or all the kernel allows.
fn burst() -> usize {
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(128);
    600.min(somaxconn)
}

/// Opened at once to a listener that accepts none, each connection
/// completes its handshake only if the accept queue has room for it: the
/// kernel drops a SYN that finds the queue full, and with nothing accepted
/// the queue never drains, so a dropped connection never completes.
#[tokio::test]
async fn a_burst_of_connections_waits_in_the_accept_queue_instead_of_being_dropped() {
    let listener = cadre_sim::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let burst = burst();
    let mut connects = JoinSet::new();
    for _ in 0..burst {
        connects.spawn(async move {
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
        });
    }
    let mut open = Vec::new();
    while let Some(connect) = connects.join_next().await {
        let stream = connect
            .unwrap()
            .expect("a connection never completed: the accept queue dropped it")
            .unwrap();
        open.push(stream);
    }
    assert_eq!(open.len(), burst);
    drop(listener);
}

#[tokio::test]
async fn an_address_that_resolves_to_nothing_or_is_taken_is_an_error() {
    let taken = cadre_sim::bind("127.0.0.1:0").await.unwrap();
    let err = cadre_sim::bind(taken.local_addr().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, cadre_sim::Error::Serve(_)), "{err}");
    assert!(cadre_sim::bind("not an address").await.is_err());
}

#[tokio::test]
async fn a_host_name_binds_to_one_of_its_addresses() {
    let listener = cadre_sim::bind("localhost:0").await.unwrap();
    assert!(listener.local_addr().unwrap().ip().is_loopback());
}
