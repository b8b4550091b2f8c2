//! Ceph's `PrioritizedQueue<T, K>` (reference §6.3, `src/common/PrioritizedQueue.h`): a strict tier
//! drained first, highest priority first, and a token-bucket tier below it in which every
//! priority makes progress. Inside one priority the classes (`K`, a connection id for the
//! dispatch queue) are served round-robin, each class FIFO.
//!
//! Fully deterministic: same calls, same order. Class round-robin follows `K`'s order, as Ceph's
//! `std::map` does.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

/// One priority level: a FIFO per class and a round-robin cursor over the classes.
struct SubQueue<T, K: Ord + Clone> {
    classes: BTreeMap<K, VecDeque<(u64, T)>>,
    /// The class served next. Always a key of `classes` when there is one; a key rather than a
    /// position so that inserting or removing other classes does not move it.
    cur: Option<K>,
    tokens: u64,
    max_tokens: u64,
    size: usize,
}

impl<T, K: Ord + Clone> SubQueue<T, K> {
    fn new(max_tokens: u64) -> Self {
        SubQueue {
            classes: BTreeMap::new(),
            cur: None,
            tokens: 0,
            max_tokens,
            size: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    fn put_tokens(&mut self, t: u64) {
        self.tokens = self.tokens.saturating_add(t).min(self.max_tokens);
    }

    fn take_tokens(&mut self, t: u64) {
        self.tokens = self.tokens.saturating_sub(t);
    }

    /// The class after `k` in key order, wrapping round.
    fn class_after(&self, k: &K) -> Option<K> {
        self.classes
            .range((Bound::Excluded(k), Bound::Unbounded))
            .next()
            .or_else(|| self.classes.iter().next())
            .map(|(k, _)| k.clone())
    }

    fn enqueue(&mut self, class: K, cost: u64, item: T, front: bool) {
        let list = self.classes.entry(class.clone()).or_default();
        if front {
            list.push_front((cost, item));
        } else {
            list.push_back((cost, item));
        }
        if self.cur.is_none() {
            self.cur = Some(class);
        }
        self.size += 1;
    }

    fn front_cost(&self) -> Option<u64> {
        let cur = self.cur.as_ref()?;
        self.classes.get(cur)?.front().map(|(c, _)| *c)
    }

    /// Pops the front of the current class and moves the cursor on, so that the next pop serves
    /// the next class even when this one still has items.
    fn pop_front(&mut self) -> Option<(u64, T)> {
        let cur = self.cur.clone()?;
        let list = self.classes.get_mut(&cur)?;
        let popped = list.pop_front()?;
        if list.is_empty() {
            self.classes.remove(&cur);
        }
        self.cur = self.class_after(&cur);
        self.size -= 1;
        Some(popped)
    }

    fn remove_by_class(&mut self, class: &K, out: &mut Vec<T>) {
        let Some(list) = self.classes.remove(class) else { return };
        self.size -= list.len();
        out.extend(list.into_iter().map(|(_, t)| t));
        if self.cur.as_ref() == Some(class) {
            self.cur = self.class_after(class);
        }
    }
}

/// Ceph's two-tier prioritized queue; see the module comment.
pub struct PrioritizedQueue<T, K: Ord + Clone> {
    /// Sum of the priorities of the non-empty token-tier subqueues: the denominator of each
    /// subqueue's share of the tokens.
    total_priority: u64,
    max_tokens_per_subqueue: u64,
    min_cost: u64,
    high_queue: BTreeMap<u16, SubQueue<T, K>>,
    queue: BTreeMap<u16, SubQueue<T, K>>,
    len: usize,
}

impl<T, K: Ord + Clone> PrioritizedQueue<T, K> {
    /// Ceph's defaults are `ms_pq_max_tokens_per_priority` = 16777216 and `ms_pq_min_cost` = 65536.
    pub fn new(max_tokens_per_subqueue: u64, min_cost: u64) -> Self {
        PrioritizedQueue {
            total_priority: 0,
            max_tokens_per_subqueue,
            min_cost,
            high_queue: BTreeMap::new(),
            queue: BTreeMap::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn enqueue_strict(&mut self, class: K, priority: u16, item: T) {
        self.push_strict(class, priority, item, false);
    }

    /// For requeues: ahead of everything of its class at that priority.
    pub fn enqueue_strict_front(&mut self, class: K, priority: u16, item: T) {
        self.push_strict(class, priority, item, true);
    }

    pub fn enqueue(&mut self, class: K, priority: u16, cost: u64, item: T) {
        self.push_normal(class, priority, cost, item, false);
    }

    /// For requeues: ahead of everything of its class at that priority.
    pub fn enqueue_front(&mut self, class: K, priority: u16, cost: u64, item: T) {
        self.push_normal(class, priority, cost, item, true);
    }

    fn push_strict(&mut self, class: K, priority: u16, item: T, front: bool) {
        // Strict items never use tokens; their cost is irrelevant.
        self.high_queue
            .entry(priority)
            .or_insert_with(|| SubQueue::new(0))
            .enqueue(class, 0, item, front);
        self.len += 1;
    }

    fn push_normal(&mut self, class: K, priority: u16, cost: u64, item: T, front: bool) {
        // Clamped as Ceph does (min first, then max): tiny items must still pay something or a
        // low priority full of them would never run short of tokens, and an item dearer than a
        // full bucket could never be paid for.
        let cost = cost.max(self.min_cost).min(self.max_tokens_per_subqueue);
        let max_tokens = self.max_tokens_per_subqueue;
        let total = &mut self.total_priority;
        self.queue
            .entry(priority)
            .or_insert_with(|| {
                *total += u64::from(priority);
                SubQueue::new(max_tokens)
            })
            .enqueue(class, cost, item, front);
        self.len += 1;
    }

    /// Removing an emptied token-tier subqueue forfeits its tokens, as in Ceph: a level earns
    /// tokens only while it has work waiting.
    fn remove_queue(&mut self, priority: u16) {
        if self.queue.remove(&priority).is_some() {
            self.total_priority -= u64::from(priority);
        }
    }

    /// Every waiting level gets its priority's share of what was just spent, plus one so that a
    /// level whose share rounds to nothing still progresses.
    fn distribute_tokens(&mut self, cost: u64) {
        if self.total_priority == 0 {
            return;
        }
        let total = u128::from(self.total_priority);
        for (&prio, sq) in self.queue.iter_mut() {
            let share = u128::from(prio) * u128::from(cost) / total;
            sq.put_tokens(u64::try_from(share).unwrap_or(u64::MAX).saturating_add(1));
        }
    }

    pub fn dequeue(&mut self) -> Option<T> {
        if let Some(mut e) = self.high_queue.last_entry() {
            let (_, item) = e.get_mut().pop_front()?;
            if e.get().is_empty() {
                e.remove();
            }
            self.len -= 1;
            return Some(item);
        }

        // Among the levels that can pay for their front item, the lowest goes first: that is
        // what lets low priorities through at all, since the higher levels earn more tokens.
        let affordable = self
            .queue
            .iter()
            .find(|(_, sq)| sq.front_cost().is_some_and(|c| c < sq.tokens))
            .map(|(&p, _)| p);
        let (prio, pay) = match affordable {
            Some(p) => (p, true),
            None => (*self.queue.keys().next_back()?, false),
        };
        let sq = self.queue.get_mut(&prio)?;
        let (cost, item) = sq.pop_front()?;
        if pay {
            sq.take_tokens(cost);
        }
        if sq.is_empty() {
            self.remove_queue(prio);
        }
        self.distribute_tokens(cost);
        self.len -= 1;
        Some(item)
    }

    /// Takes out every item of `class`, in the order they would have been dequeued across
    /// priorities (strict tier highest first, then the token tier highest first), each
    /// priority's items FIFO.
    pub fn remove_by_class(&mut self, class: &K) -> Vec<T> {
        let mut out = Vec::new();
        for sq in self.high_queue.values_mut().rev() {
            sq.remove_by_class(class, &mut out);
        }
        self.high_queue.retain(|_, sq| !sq.is_empty());
        for sq in self.queue.values_mut().rev() {
            sq.remove_by_class(class, &mut out);
        }
        let emptied: Vec<u16> = self
            .queue
            .iter()
            .filter(|(_, sq)| sq.is_empty())
            .map(|(&p, _)| p)
            .collect();
        for p in emptied {
            self.remove_queue(p);
        }
        self.len -= out.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 16_777_216;
    const MIN: u64 = 65_536;

    fn drain<T, K: Ord + Clone>(q: &mut PrioritizedQueue<T, K>) -> Vec<T> {
        std::iter::from_fn(|| q.dequeue()).collect()
    }

    #[test]
    fn empty_queue_dequeues_nothing() {
        let mut q: PrioritizedQueue<u32, u64> = PrioritizedQueue::new(MAX, MIN);
        assert!(q.is_empty());
        assert_eq!(q.dequeue(), None);
    }

    #[test]
    fn strict_beats_normal_whatever_the_priorities() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        q.enqueue(1u64, 250, 0, "normal-high");
        q.enqueue_strict(1u64, 1, "strict-low");
        assert_eq!(q.len(), 2);
        assert_eq!(drain(&mut q), ["strict-low", "normal-high"]);
        assert!(q.is_empty());
    }

    #[test]
    fn higher_strict_priority_first() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        q.enqueue_strict(1u64, 127, "127");
        q.enqueue_strict(2u64, 64, "64");
        q.enqueue_strict(3u64, 255, "255");
        q.enqueue_strict(1u64, 196, "196");
        assert_eq!(drain(&mut q), ["255", "196", "127", "64"]);
    }

    #[test]
    fn round_robin_between_classes_within_a_priority() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        for it in ["A1", "A2", "A3"] {
            q.enqueue_strict('a', 127, it);
        }
        for it in ["B1", "B2"] {
            q.enqueue_strict('b', 127, it);
        }
        assert_eq!(drain(&mut q), ["A1", "B1", "A2", "B2", "A3"]);

        // Same in the token tier.
        for it in ["A1", "A2", "A3"] {
            q.enqueue('a', 10, 0, it);
        }
        for it in ["B1", "B2"] {
            q.enqueue('b', 10, 0, it);
        }
        assert_eq!(drain(&mut q), ["A1", "B1", "A2", "B2", "A3"]);
    }

    #[test]
    fn a_class_arriving_later_joins_the_rotation() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        q.enqueue_strict(2u64, 127, "c2-1");
        q.enqueue_strict(2u64, 127, "c2-2");
        assert_eq!(q.dequeue(), Some("c2-1"));
        q.enqueue_strict(1u64, 127, "c1-1");
        q.enqueue_strict(3u64, 127, "c3-1");
        // Class 2 was alone, so the cursor wrapped back onto it; newcomers wait their turn in
        // key order after it.
        assert_eq!(drain(&mut q), ["c2-2", "c3-1", "c1-1"]);
    }

    #[test]
    fn fifo_per_class_and_front_enqueues() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        for i in 0..100u32 {
            q.enqueue_strict(7u64, 127, i);
        }
        assert_eq!(drain(&mut q), (0..100).collect::<Vec<_>>());

        q.enqueue_strict(7u64, 127, 1);
        q.enqueue_strict(7u64, 127, 2);
        q.enqueue_strict_front(7u64, 127, 0);
        assert_eq!(drain(&mut q), [0, 1, 2]);

        q.enqueue(7u64, 5, 0, 1);
        q.enqueue(7u64, 5, 0, 2);
        q.enqueue_front(7u64, 5, 0, 0);
        assert_eq!(drain(&mut q), [0, 1, 2]);
    }

    #[test]
    fn remove_by_class_takes_its_items_in_queue_order() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        q.enqueue(1u64, 10, 0, "n10-a");
        q.enqueue(1u64, 20, 0, "n20-a");
        q.enqueue(2u64, 20, 0, "n20-other");
        q.enqueue_strict(1u64, 127, "s127-a");
        q.enqueue_strict(1u64, 127, "s127-b");
        q.enqueue_strict(2u64, 127, "s127-other");
        q.enqueue_strict(1u64, 200, "s200-a");
        assert_eq!(q.total_priority, 30);

        let removed = q.remove_by_class(&1);
        assert_eq!(removed, ["s200-a", "s127-a", "s127-b", "n20-a", "n10-a"]);
        assert_eq!(q.len(), 2);
        // Level 10 emptied and left the token tier; level 20 still holds class 2.
        assert_eq!(q.total_priority, 20);
        assert!(!q.high_queue.contains_key(&200));
        assert!(q.remove_by_class(&1).is_empty());
        assert_eq!(drain(&mut q), ["s127-other", "n20-other"]);
        assert_eq!(q.total_priority, 0);
    }

    #[test]
    fn remove_by_class_moves_the_cursor_on() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        for (c, it) in [(1u64, "1a"), (2, "2a"), (3, "3a"), (1, "1b"), (2, "2b"), (3, "3b")] {
            q.enqueue_strict(c, 127, it);
        }
        assert_eq!(q.dequeue(), Some("1a"));
        // The cursor is on class 2: removing it hands the turn to class 3.
        assert_eq!(q.remove_by_class(&2), ["2a", "2b"]);
        assert_eq!(drain(&mut q), ["3a", "1b", "3b"]);
    }

    #[test]
    fn costs_are_clamped_and_tokens_follow_cephs_distribution() {
        let mut q = PrioritizedQueue::new(5000, 1000);
        q.enqueue(1u64, 10, 1, "p10");
        q.enqueue(1u64, 30, 1_000_000_000, "p30");
        assert_eq!(q.queue[&10].front_cost(), Some(1000));
        assert_eq!(q.queue[&30].front_cost(), Some(5000));

        // Nobody has tokens yet: the highest level goes. It empties and leaves before the
        // distribution, so level 10 gets the whole 5000 (+1), capped at max.
        assert_eq!(q.dequeue(), Some("p30"));
        assert_eq!(q.total_priority, 10);
        assert_eq!(q.queue[&10].tokens, 5000);

        q.enqueue(1u64, 30, 0, "p30-b");
        q.enqueue(1u64, 10, 0, "p10-b");
        // Level 10 can pay 1000 < 5000 and is the lowest affordable, so it goes before 30; it
        // pays 1000, then every level gets its share of 1000: 10 -> 250+1, 30 -> 750+1.
        assert_eq!(q.dequeue(), Some("p10"));
        assert_eq!(q.queue[&10].tokens, 5000 - 1000 + 251);
        assert_eq!(q.queue[&30].tokens, 751);
        assert_eq!(drain(&mut q), ["p10-b", "p30-b"]);
    }

    /// Both levels kept busy: the lower one must be served sometimes, the higher one more.
    #[test]
    fn token_tier_lets_low_priorities_progress() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        // Two items each so that a level never empties (and loses its tokens) between refills.
        for _ in 0..2 {
            q.enqueue(1u64, 10, 0, 10u16);
            q.enqueue(2u64, 50, 0, 50u16);
        }
        let (mut low, mut high) = (0, 0);
        for _ in 0..1000 {
            let p = q.dequeue().expect("never empty");
            if p == 10 {
                low += 1;
            } else {
                high += 1;
            }
            q.enqueue(if p == 10 { 1u64 } else { 2 }, p, 0, p);
        }
        assert!(low > 0, "low priority starved: {low} vs {high}");
        assert!(high > low, "higher priority not favoured: {low} vs {high}");
        // With equal costs the shares follow the priorities, 10:50.
        assert!((120..=220).contains(&low), "low got {low} of 1000");
    }

    #[test]
    fn higher_priorities_get_more_among_several_levels() {
        let mut q = PrioritizedQueue::new(MAX, MIN);
        let prios = [5u16, 20, 40];
        for _ in 0..2 {
            for &p in &prios {
                q.enqueue(u64::from(p), p, 0, p);
            }
        }
        let mut served = [0u32; 3];
        for _ in 0..3000 {
            let p = q.dequeue().expect("never empty");
            let i = prios.iter().position(|&x| x == p).expect("known priority");
            served[i] += 1;
            q.enqueue(u64::from(p), p, 0, p);
        }
        assert!(served[0] > 0, "{served:?}");
        assert!(served[0] < served[1] && served[1] < served[2], "{served:?}");
    }
}
