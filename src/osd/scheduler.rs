//! The OSD op scheduler: Ceph's `WeightedPriorityQueue` ("wpq", reference §6.4) behind the
//! `osd_op_queue_cut_off` split (§8.2).
//!
//! - Strict tier (priority >= cut-off): always drained first, highest priority first,
//!   round-robin between classes (owners) inside a priority.
//! - Normal tier: a weighted random choice of priority — each non-empty priority's chance is
//!   proportional to its value, so none starves — then a cost check that favours cheap items
//!   (`rand % max_cost <= max_cost - 0.9 * front_cost`, retried on failure, as Ceph does);
//!   inside a priority, classes are served round-robin and each class is FIFO.

use std::collections::{BTreeMap, VecDeque};

/// `osd_op_queue_cut_off`: `low` = 64, `high` = 196.
pub fn cutoff_from_option(v: &str) -> u16 {
    if v == "low" {
        crate::msgr::message::CEPH_MSG_PRIO_LOW
    } else {
        crate::msgr::message::CEPH_MSG_PRIO_HIGH
    }
}

/// One priority level: classes served round-robin, each a FIFO of (cost, item).
struct Level<T, K> {
    classes: BTreeMap<K, VecDeque<(u64, T)>>,
    /// The class served last; the next dequeue starts after it.
    cursor: Option<K>,
    len: usize,
}

impl<T, K: Ord + Clone> Level<T, K> {
    fn new() -> Self {
        Level {
            classes: BTreeMap::new(),
            cursor: None,
            len: 0,
        }
    }
    fn push(&mut self, class: K, cost: u64, item: T, front: bool) {
        let q = self.classes.entry(class).or_default();
        if front {
            q.push_front((cost, item));
        } else {
            q.push_back((cost, item));
        }
        self.len += 1;
    }
    /// The class whose turn it is (the first after the cursor, wrapping).
    fn next_class(&self) -> Option<K> {
        use std::ops::Bound::{Excluded, Unbounded};
        let after = match &self.cursor {
            Some(c) => self.classes.range((Excluded(c.clone()), Unbounded)).next(),
            None => None,
        };
        after.or_else(|| self.classes.iter().next()).map(|(k, _)| k.clone())
    }
    fn front_cost(&self) -> u64 {
        self.next_class()
            .and_then(|k| self.classes[&k].front().map(|(c, _)| *c))
            .unwrap_or(0)
    }
    fn pop(&mut self) -> Option<(u64, T)> {
        let k = self.next_class()?;
        let q = self.classes.get_mut(&k).expect("class listed");
        let it = q.pop_front();
        if q.is_empty() {
            self.classes.remove(&k);
        }
        self.cursor = Some(k);
        self.len -= it.is_some() as usize;
        it
    }
}

/// Ceph's WeightedPriorityQueue with the cut-off in front of it. `K` is the class (the op's
/// owner: a client's entity number), `T` the item.
pub struct WeightedPriorityQueue<T, K: Ord + Clone> {
    cutoff: u16,
    strict: BTreeMap<u16, Level<T, K>>,
    normal: BTreeMap<u16, Level<T, K>>,
    /// Sum of the priorities of the non-empty normal levels.
    total_priority: u64,
    /// Largest cost ever queued in the normal tier (Ceph keeps the running max too).
    max_cost: u64,
    len: usize,
    rng: u64,
}

impl<T, K: Ord + Clone> WeightedPriorityQueue<T, K> {
    pub fn new(cutoff: u16) -> Self {
        Self::with_seed(cutoff, 0x2545_f491_4f6c_dd1d)
    }
    /// A queue whose random choices follow `seed` (tests, and one seed per shard).
    pub fn with_seed(cutoff: u16, seed: u64) -> Self {
        WeightedPriorityQueue {
            cutoff,
            strict: BTreeMap::new(),
            normal: BTreeMap::new(),
            total_priority: 0,
            max_cost: 1,
            len: 0,
            rng: seed | 1,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn cutoff(&self) -> u16 {
        self.cutoff
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn push(&mut self, class: K, priority: u16, cost: u64, item: T, front: bool) {
        self.len += 1;
        if priority >= self.cutoff {
            self.strict
                .entry(priority)
                .or_insert_with(Level::new)
                .push(class, cost, item, front);
            return;
        }
        // Priority 0 would never win the weighted draw: it counts as 1.
        let priority = priority.max(1);
        let level = self.normal.entry(priority).or_insert_with(Level::new);
        if level.len == 0 {
            self.total_priority += u64::from(priority);
        }
        level.push(class, cost, item, front);
        self.max_cost = self.max_cost.max(cost.max(1));
    }

    /// Queues at the back of its class.
    pub fn enqueue(&mut self, class: K, priority: u16, cost: u64, item: T) {
        self.push(class, priority, cost, item, false);
    }
    /// Queues at the front of its class (requeues keep their original order this way).
    pub fn enqueue_front(&mut self, class: K, priority: u16, cost: u64, item: T) {
        self.push(class, priority, cost, item, true);
    }

    pub fn dequeue(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        if let Some(mut e) = self.strict.last_entry() {
            let (_, item) = e.get_mut().pop().expect("levels are never left empty");
            if e.get().len == 0 {
                e.remove();
            }
            return Some(item);
        }
        let prio = self.pick_normal();
        let level = self.normal.get_mut(&prio).expect("picked a present level");
        let (_, item) = level.pop().expect("levels are never left empty");
        if level.len == 0 {
            self.normal.remove(&prio);
            self.total_priority -= u64::from(prio);
        }
        Some(item)
    }

    /// The weighted draw of a normal priority, with Ceph's cost check (a bounded number of
    /// retries; the last draw is taken as is so a dequeue always finishes).
    fn pick_normal(&mut self) -> u16 {
        debug_assert!(!self.normal.is_empty());
        if self.normal.len() == 1 {
            return *self.normal.keys().next().expect("one level");
        }
        let mut chosen = 0;
        for _ in 0..16 {
            let mut pos = self.rand() % self.total_priority;
            // Highest priority first, as Ceph walks it.
            for (p, _) in self.normal.iter().rev() {
                if pos < u64::from(*p) {
                    chosen = *p;
                    break;
                }
                pos -= u64::from(*p);
            }
            let front_cost = self.normal[&chosen].front_cost();
            let limit = self.max_cost as f64 - 0.9 * front_cost as f64;
            if (self.rand() % self.max_cost) as f64 <= limit {
                break;
            }
        }
        chosen
    }

    /// Removes every item of `class` (a client that went away), in queue order per tier.
    pub fn remove_by_class(&mut self, class: &K) -> Vec<T> {
        let mut out = Vec::new();
        for tier in [&mut self.strict, &mut self.normal] {
            for level in tier.values_mut() {
                if let Some(q) = level.classes.remove(class) {
                    level.len -= q.len();
                    out.extend(q.into_iter().map(|(_, t)| t));
                }
            }
        }
        let emptied: Vec<u16> = self
            .normal
            .iter()
            .filter(|(_, l)| l.len == 0)
            .map(|(p, _)| *p)
            .collect();
        for p in emptied {
            self.normal.remove(&p);
            self.total_priority -= u64::from(p);
        }
        self.strict.retain(|_, l| l.len > 0);
        self.len -= out.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_items_go_first_highest_priority_first() {
        let mut q = WeightedPriorityQueue::new(196);
        q.enqueue(1u64, 63, 4096, "client");
        q.enqueue(1, 255, 0, "peering");
        q.enqueue(1, 196, 0, "high");
        q.enqueue(1, 3, 4096, "recovery");
        assert_eq!(q.dequeue(), Some("peering"));
        assert_eq!(q.dequeue(), Some("high"));
        assert_eq!(q.len(), 2);
        let rest: Vec<_> = std::iter::from_fn(|| q.dequeue()).collect();
        assert_eq!(rest.len(), 2);
        assert!(q.is_empty());
    }

    #[test]
    fn the_cutoff_option_maps_to_ceph_priorities() {
        assert_eq!(cutoff_from_option("low"), 64);
        assert_eq!(cutoff_from_option("high"), 196);
        let mut q = WeightedPriorityQueue::new(cutoff_from_option("low"));
        q.enqueue(1u64, 63, 1, "weighted");
        q.enqueue(1, 64, 1, "strict");
        assert_eq!(q.dequeue(), Some("strict"), "64 is strict with the low cut-off");
    }

    #[test]
    fn classes_are_round_robin_and_each_class_is_fifo() {
        let mut q = WeightedPriorityQueue::new(196);
        for i in 0..3 {
            q.enqueue(1u64, 63, 10, (1, i));
            q.enqueue(2u64, 63, 10, (2, i));
        }
        let out: Vec<_> = std::iter::from_fn(|| q.dequeue()).collect();
        assert_eq!(out, vec![(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2)]);
    }

    #[test]
    fn enqueue_front_puts_a_requeue_back_at_the_head_of_its_class() {
        let mut q = WeightedPriorityQueue::new(196);
        q.enqueue(1u64, 63, 1, 2);
        q.enqueue(1u64, 63, 1, 3);
        q.enqueue_front(1u64, 63, 1, 1);
        let out: Vec<_> = std::iter::from_fn(|| q.dequeue()).collect();
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn weighted_levels_share_by_priority_and_none_starves() {
        let mut q = WeightedPriorityQueue::with_seed(196, 42);
        // Keep both levels non-empty; count which one each dequeue serves.
        for i in 0..20_000u32 {
            q.enqueue(1u64, 63, 4096, (63u16, i));
            q.enqueue(2u64, 3, 4096, (3u16, i));
        }
        let mut served = [0u32; 2];
        for _ in 0..10_000 {
            let (p, _) = q.dequeue().unwrap();
            served[(p == 3) as usize] += 1;
        }
        let ratio = f64::from(served[0]) / f64::from(served[1]);
        // Priorities 63 and 3: about 21 to 1.
        assert!(
            (14.0..32.0).contains(&ratio),
            "63:3 served {served:?}, ratio {ratio:.1}"
        );
        assert!(served[1] > 0, "the low priority is not starved");
    }

    #[test]
    fn cheap_items_are_favoured_at_equal_priority_weight() {
        // Two levels of equal weight share evenly when costs are equal; a level whose front is
        // expensive loses some of its turns to the cost check.
        let mut q = WeightedPriorityQueue::with_seed(196, 7);
        for i in 0..20_000u32 {
            q.enqueue(1u64, 50, 1 << 20, (50u16, i)); // expensive
            q.enqueue(2u64, 49, 4096, (49u16, i)); // cheap
        }
        let mut cheap = 0;
        for _ in 0..10_000 {
            cheap += (q.dequeue().unwrap().0 == 49) as u32;
        }
        assert!(
            cheap > 5_500,
            "cheap items won {cheap} of 10000 against equally weighted expensive ones"
        );
    }

    #[test]
    fn remove_by_class_takes_a_clients_items_out() {
        let mut q = WeightedPriorityQueue::new(196);
        q.enqueue(1u64, 63, 1, "a1");
        q.enqueue(2u64, 63, 1, "b1");
        q.enqueue(1u64, 200, 1, "a-strict");
        q.enqueue(1u64, 3, 1, "a-low");
        let mut removed = q.remove_by_class(&1);
        removed.sort();
        assert_eq!(removed, vec!["a-low", "a-strict", "a1"]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.dequeue(), Some("b1"));
        assert_eq!(q.dequeue(), None);
    }
}
