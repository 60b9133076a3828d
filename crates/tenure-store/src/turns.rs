//! Turns at a shared resource handed out urgent work first: SQLite's one writer, a target
//! system's concurrent calls.
//!
//! Write transactions take SQLite's writer one at a time. A plain FIFO lock would make a
//! leaver's transaction wait behind every transaction queued before it, each holding the writer
//! for milliseconds under a hire backlog, and a leave takes the writer about seven times. A
//! system's `max_concurrency` is the same kind of queue for its calls. With [`Turns`], a
//! waiting urgent taker is handed the next free turn ahead of every normal one waiting; normal
//! ones still go in the order they came. Nothing is pre-empted: a turn is held until dropped.
//! Some turns can be kept for urgent takers ([`Turns::with_reserve`]): normal takers wait
//! rather than take the last of them, so an urgent taker seldom waits at all.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tenure_core::run::Priority;
use tokio::sync::oneshot;

/// A number of turns, handed to urgent waiters first, then to normal ones, each queue in
/// arrival order.
pub struct Turns {
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// Free turns only urgent takers may have.
    reserved: usize,
    urgent: VecDeque<oneshot::Sender<()>>,
    normal: VecDeque<oneshot::Sender<()>>,
}

/// One turn, given back when dropped.
pub struct Turn(Arc<Turns>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.hand_on();
    }
}

impl Turns {
    /// `n` turns that can be held at once.
    pub fn new(n: usize) -> Turns {
        Turns::with_reserve(n, 0)
    }

    /// `n` turns that can be held at once, of which normal takers may hold at most
    /// `n - reserved`: the last `reserved` free turns go to urgent takers only.
    pub fn with_reserve(n: usize, reserved: usize) -> Turns {
        Turns {
            state: Mutex::new(State {
                free: n,
                reserved: reserved.min(n.saturating_sub(1)),
                urgent: VecDeque::new(),
                normal: VecDeque::new(),
            }),
        }
    }

    /// How many turns are free now.
    pub fn free(&self) -> usize {
        self.state.lock().expect("turns lock").free
    }

    /// How many takers are waiting for a turn now.
    pub fn waiting(&self) -> usize {
        let s = self.state.lock().expect("turns lock");
        s.urgent.len() + s.normal.len()
    }

    /// Whether an urgent taker waits for a turn now: a holder doing a long batch of normal
    /// work can end it early and let it go first.
    pub fn urgent_waiting(&self) -> bool {
        !self.state.lock().expect("turns lock").urgent.is_empty()
    }

    /// Waits for a turn. Cancel-safe: a waiter dropped before or after being handed a turn
    /// passes it on.
    pub async fn take(self: &Arc<Self>, priority: Priority) -> Turn {
        let Some(answer) = self.free_or_queue(priority) else {
            return Turn(self.clone());
        };
        let mut waiting = Waiting {
            answer: Some(answer),
            turns: self,
        };
        let handed = waiting.answer.as_mut().expect("set above").await;
        waiting.answer = None;
        // A sender is only dropped unsent with `Turns` itself, which this waiter holds.
        debug_assert!(handed.is_ok(), "a turn's sender is never dropped unsent");
        Turn(self.clone())
    }

    /// Waits for a turn on a thread outside the async runtime, blocking it (the SQLite
    /// checkpoint thread). Must not be called from async code.
    pub fn take_blocking(self: &Arc<Self>, priority: Priority) -> Turn {
        let Some(answer) = self.free_or_queue(priority) else {
            return Turn(self.clone());
        };
        let handed = answer.blocking_recv();
        debug_assert!(handed.is_ok(), "a turn's sender is never dropped unsent");
        Turn(self.clone())
    }

    /// Takes a free turn (`None`), or queues for one: the receiver is told when it is handed.
    fn free_or_queue(&self, priority: Priority) -> Option<oneshot::Receiver<()>> {
        let mut s = self.state.lock().expect("turns lock");
        let room = match priority {
            Priority::Urgent => s.free,
            Priority::Normal => s.free.saturating_sub(s.reserved),
        };
        if room > 0 {
            s.free -= 1;
            return None;
        }
        let (tx, rx) = oneshot::channel();
        match priority {
            Priority::Urgent => s.urgent.push_back(tx),
            Priority::Normal => s.normal.push_back(tx),
        }
        Some(rx)
    }

    /// Gives a turn given back to the next waiter, urgent ones first, or frees it. A normal
    /// waiter has it only if the reserve stays whole.
    fn hand_on(&self) {
        let mut s = self.state.lock().expect("turns lock");
        loop {
            let next = match s.urgent.pop_front() {
                Some(next) => Some(next),
                None if s.free >= s.reserved => s.normal.pop_front(),
                None => None,
            };
            let Some(next) = next else {
                s.free += 1;
                return;
            };
            // A waiter that gave up (its future dropped) is skipped.
            if next.send(()).is_ok() {
                return;
            }
        }
    }
}

/// A waiter in a queue. If its future is dropped once a turn was sent to it, the turn is
/// passed on, not lost.
struct Waiting<'t> {
    answer: Option<oneshot::Receiver<()>>,
    turns: &'t Arc<Turns>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut answer) = self.answer.take() {
            answer.close();
            if answer.try_recv().is_ok() {
                self.turns.hand_on();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Lets the spawned tasks run until each waits on something.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn urgent_waiters_go_before_normal_ones_that_came_earlier() {
        let turns = Arc::new(Turns::new(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = turns.take(Priority::Normal).await;
        let mut tasks = Vec::new();
        for (priority, name) in [
            (Priority::Normal, "normal 1"),
            (Priority::Normal, "normal 2"),
            (Priority::Urgent, "urgent 1"),
            (Priority::Urgent, "urgent 2"),
        ] {
            let (turns, order) = (turns.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = turns.take(priority).await;
                order.lock().unwrap().push(name);
            }));
            // Each waiter is queued before the next one starts.
            settle().await;
        }
        assert!(order.lock().unwrap().is_empty(), "the turn is held");
        drop(held);
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("every waiter gets its turn")
                .unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            ["urgent 1", "urgent 2", "normal 1", "normal 2"]
        );
    }

    #[tokio::test]
    async fn normal_takers_leave_the_reserve_to_urgent_ones() {
        let turns = Arc::new(Turns::with_reserve(2, 1));
        let first = turns.take(Priority::Normal).await;
        let second = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take(Priority::Normal).await }
        });
        settle().await;
        assert_eq!(turns.waiting(), 1, "the last free turn is kept");
        // An urgent taker has it at once, and gives it back to the reserve.
        let urgent = tokio::time::timeout(Duration::ZERO, turns.take(Priority::Urgent))
            .await
            .expect("the reserve is the urgent taker's without waiting");
        drop(urgent);
        settle().await;
        assert_eq!(turns.waiting(), 1, "the reserve stays whole");
        assert_eq!(turns.free(), 1);
        // A normal turn given back goes to the normal waiter.
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the normal waiter gets the turn given back")
            .unwrap();
        assert_eq!(turns.free(), 1);
        drop(second);
        assert_eq!(turns.free(), 2);
        // A reserve can never take every turn: one turn, no reserve.
        let one = Arc::new(Turns::with_reserve(1, 1));
        drop(
            tokio::time::timeout(Duration::ZERO, one.take(Priority::Normal))
                .await
                .expect("a normal taker can have the only turn"),
        );
    }

    #[tokio::test]
    async fn a_holder_can_see_an_urgent_taker_waiting() {
        let turns = Arc::new(Turns::new(1));
        let held = turns.take(Priority::Normal).await;
        let normal = tokio::spawn({
            let turns = turns.clone();
            async move { drop(turns.take(Priority::Normal).await) }
        });
        settle().await;
        assert!(!turns.urgent_waiting(), "only a normal taker waits");
        let urgent = tokio::spawn({
            let turns = turns.clone();
            async move { drop(turns.take(Priority::Urgent).await) }
        });
        settle().await;
        assert!(turns.urgent_waiting());
        drop(held);
        urgent.await.unwrap();
        normal.await.unwrap();
        assert!(!turns.urgent_waiting());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_the_turn() {
        let turns = Arc::new(Turns::new(1));
        let held = turns.take(Priority::Normal).await;
        // Gives up before its turn comes.
        let gave_up = tokio::spawn({
            let turns = turns.clone();
            async move {
                let _ = tokio::time::timeout(Duration::ZERO, turns.take(Priority::Urgent)).await;
            }
        });
        gave_up.await.unwrap();
        // Is handed the turn, but dropped before it ever runs again.
        let mut handed = Box::pin(turns.take(Priority::Urgent));
        assert!(
            futures_poll_once(handed.as_mut()).await.is_none(),
            "the turn is held"
        );
        drop(held);
        drop(handed);
        let next = tokio::time::timeout(Duration::from_secs(5), turns.take(Priority::Normal))
            .await
            .expect("the turn was passed on");
        drop(next);
        assert_eq!(turns.free(), 1, "the turn is free again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn turns_are_neither_lost_nor_doubled_under_contention() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        for reserve in [0, 3] {
            let turns = Arc::new(Turns::with_reserve(8, reserve));
            // Turns held in all, and by normal takers.
            let holding = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
            let most = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
            let mut tasks = Vec::new();
            for i in 0..400 {
                let (turns, holding, most) = (turns.clone(), holding.clone(), most.clone());
                tasks.push(tokio::spawn(async move {
                    let priority = if i % 5 == 0 {
                        Priority::Urgent
                    } else {
                        Priority::Normal
                    };
                    if i % 7 == 0 {
                        // Some give up while waiting.
                        let _ =
                            tokio::time::timeout(Duration::from_micros(50), turns.take(priority))
                                .await;
                        return;
                    }
                    let _turn = turns.take(priority).await;
                    let all = holding.0.fetch_add(1, SeqCst) + 1;
                    most.0.fetch_max(all, SeqCst);
                    if priority == Priority::Normal {
                        let normal = holding.1.fetch_add(1, SeqCst) + 1;
                        most.1.fetch_max(normal, SeqCst);
                    }
                    tokio::task::yield_now().await;
                    if priority == Priority::Normal {
                        holding.1.fetch_sub(1, SeqCst);
                    }
                    holding.0.fetch_sub(1, SeqCst);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(turns.free(), 8, "every turn was given back");
            assert!(most.0.load(SeqCst) <= 8);
            assert!(
                most.1.load(SeqCst) <= 8 - reserve,
                "normal takers held {} of the turns, more than {}",
                most.1.load(SeqCst),
                8 - reserve
            );
        }
    }

    /// Polls a future once: `Some` with its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
