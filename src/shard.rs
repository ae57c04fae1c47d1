//! Which servers this replica probes and decides: servers hash into [`BUCKETS`] buckets, and
//! the live replicas share the buckets by rendezvous hashing (each bucket goes to the replica
//! with the highest hash of the pair). A replica owns a bucket only while it holds the
//! bucket's lease (a row with a term, taken and renewed by `cluster`); [`Ownership`] is what
//! it holds right now, read by the ingest (which results it decides, and the fence its
//! batches carry) and the API (which servers its own scheduler takes).
//!
//! Rendezvous hashing moves only the buckets it must: when a fourth replica joins three, each
//! bucket moves only if the newcomer's hash for it is the highest, about a quarter of them;
//! when one of four leaves, only its own buckets move. SQLite is a single node that owns
//! everything without leases.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

/// The bucket leases a batch was decided under: their holder, and each bucket with its term.
/// The store writes the batch's decisions only for buckets still held so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    /// (bucket, term), ascending by bucket.
    pub buckets: Vec<(u16, i64)>,
}

/// How many buckets the servers are spread over. Enough that three or four replicas get
/// nearly equal shares (±20 % at 128), few enough that a replica renews its leases in one
/// statement.
pub const BUCKETS: u16 = 128;

/// The bucket a server belongs to, the same on every replica and every version.
pub fn bucket_of(server_id: &str) -> u16 {
    let digest = Sha256::digest(server_id.as_bytes());
    // Bytes 8..16: the scheduler's offset uses the first eight, so a bucket's servers still
    // spread over the whole interval.
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[8..16]);
    (u64::from_be_bytes(word) % u64::from(BUCKETS)) as u16
}

/// The lease row name of a bucket.
pub fn lease_name(bucket: u16) -> String {
    format!("bucket:{bucket}")
}

/// The bucket a lease row name stands for.
pub fn bucket_of_lease(name: &str) -> Option<u16> {
    name.strip_prefix("bucket:")?
        .parse()
        .ok()
        .filter(|b| *b < BUCKETS)
}

/// The replica that should own `bucket` among `live` (replica ids); `None` if none is live.
pub fn rendezvous(bucket: u16, live: &[String]) -> Option<&str> {
    live.iter()
        .max_by_key(|replica| {
            let mut h = Sha256::new();
            h.update(replica.as_bytes());
            h.update(bucket.to_be_bytes());
            let digest = h.finalize();
            let mut word = [0u8; 8];
            word.copy_from_slice(&digest[..8]);
            (u64::from_be_bytes(word), replica.as_str())
        })
        .map(String::as_str)
}

/// The buckets `me` should own while `live` are the live replicas.
pub fn wanted(me: &str, live: &[String]) -> Vec<u16> {
    (0..BUCKETS)
        .filter(|b| rendezvous(*b, live) == Some(me))
        .collect()
}

/// What this replica owns at one moment.
#[derive(Debug, Clone)]
pub struct Owned {
    /// This replica's id (the holder of its leases).
    pub holder: String,
    /// A single node (SQLite): every server, no leases.
    pub everything: bool,
    /// Bucket → the term of the lease held for it.
    pub terms: BTreeMap<u16, i64>,
}

impl Owned {
    pub fn owns(&self, server_id: &str) -> bool {
        self.everything || self.terms.contains_key(&bucket_of(server_id))
    }

    /// What a batch decided under this ownership carries, so its decisions are written only
    /// for buckets still held with the same terms (`None`: a single node, nothing to check).
    pub fn fence(&self) -> Option<Fence> {
        (!self.everything).then(|| Fence {
            holder: self.holder.clone(),
            buckets: self.terms.iter().map(|(b, t)| (*b, *t)).collect(),
        })
    }
}

/// This replica's buckets, shared between the cluster loop (which changes them) and the
/// ingest and API (which read them).
#[derive(Debug, Clone)]
pub struct Ownership(Arc<RwLock<Owned>>);

impl Ownership {
    /// A single node: owns every server.
    pub fn everything(holder: &str) -> Self {
        Self::new(holder, true)
    }

    /// A replica among others: owns nothing until it holds bucket leases.
    pub fn sharded(holder: &str) -> Self {
        Self::new(holder, false)
    }

    fn new(holder: &str, everything: bool) -> Self {
        Ownership(Arc::new(RwLock::new(Owned {
            holder: holder.to_string(),
            everything,
            terms: BTreeMap::new(),
        })))
    }

    pub fn now(&self) -> Owned {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn owns(&self, server_id: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .owns(server_id)
    }

    pub fn holder(&self) -> String {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .holder
            .clone()
    }

    pub fn is_sharded(&self) -> bool {
        !self.0.read().unwrap_or_else(|p| p.into_inner()).everything
    }

    /// How many buckets are owned ([`BUCKETS`] on a single node).
    pub fn bucket_count(&self) -> usize {
        let owned = self.0.read().unwrap_or_else(|p| p.into_inner());
        if owned.everything {
            BUCKETS as usize
        } else {
            owned.terms.len()
        }
    }

    /// Replace the held buckets.
    pub fn set(&self, terms: BTreeMap<u16, i64>) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).terms = terms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("replica-{i}")).collect()
    }

    #[test]
    fn servers_spread_evenly_over_the_buckets() {
        let mut counts = vec![0u32; BUCKETS as usize];
        for i in 0..128_000 {
            counts[bucket_of(&uuid::Uuid::from_u128(i * 7_919).to_string()) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 850 && *max < 1150, "min {min}, max {max}");
    }

    #[test]
    fn every_bucket_has_one_owner_and_shares_are_near_equal() {
        let live = replicas(3);
        let shares: Vec<usize> = live.iter().map(|r| wanted(r, &live).len()).collect();
        assert_eq!(shares.iter().sum::<usize>(), BUCKETS as usize, "{shares:?}");
        for s in &shares {
            assert!((25..=60).contains(s), "uneven shares {shares:?}");
        }
    }

    #[test]
    fn a_fourth_replica_moves_about_a_quarter_and_a_leaving_one_only_its_own() {
        let three = replicas(3);
        let four = replicas(4);
        let moved = (0..BUCKETS)
            .filter(|b| rendezvous(*b, &three) != rendezvous(*b, &four))
            .count();
        assert!((20..=45).contains(&moved), "{moved} of {BUCKETS} moved");
        // Every moved bucket went to the newcomer, none between the old three.
        for b in 0..BUCKETS {
            let (before, after) = (rendezvous(b, &three), rendezvous(b, &four));
            assert!(before == after || after == Some("replica-3"), "bucket {b}");
        }
        // Replica 1 leaves the four: only its buckets move.
        let left: Vec<String> = four.iter().filter(|r| *r != "replica-1").cloned().collect();
        for b in 0..BUCKETS {
            if rendezvous(b, &four) != Some("replica-1") {
                assert_eq!(rendezvous(b, &four), rendezvous(b, &left), "bucket {b}");
            }
        }
    }

    #[test]
    fn lease_names_read_back_and_junk_is_not_a_bucket() {
        assert_eq!(bucket_of_lease(&lease_name(17)), Some(17));
        assert_eq!(bucket_of_lease("leader"), None);
        assert_eq!(bucket_of_lease("bucket:128"), None);
        assert_eq!(bucket_of_lease("bucket:x"), None);
    }

    #[test]
    fn a_single_node_owns_everything_and_has_no_fence() {
        let o = Ownership::everything("me");
        assert!(o.owns("any"));
        assert!(o.now().fence().is_none());
        let s = Ownership::sharded("me");
        assert!(!s.owns("any"));
        let b = bucket_of("any");
        s.set(BTreeMap::from([(b, 3)]));
        assert!(s.owns("any"));
        let fence = s.now().fence().unwrap();
        assert_eq!(fence.buckets, vec![(b, 3)]);
    }
}
