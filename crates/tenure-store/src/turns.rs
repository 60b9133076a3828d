//! Turns at a shared resource handed out urgent work first: SQLite's one writer, a target
//! system's concurrent calls.
//!
//! Write transactions take SQLite's writer one at a time. A plain FIFO lock would make a
//! leaver's transaction wait behind every transaction queued before it, each holding the writer
//! for milliseconds under a hire backlog, and a leave takes the writer about seven times. A
//! system's `max_concurrency` is the same kind of queue for its calls. With [`Turns`], a
//! waiting urgent taker is handed the next free turn ahead of every normal one waiting; normal
//! ones still go in the order they came. Nothing is pre-empted: a turn is held until dropped.

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
        Turns {
            state: Mutex::new(State {
                free: n,
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
        if s.free > 0 {
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

    /// Gives a turn given back to the next waiter, urgent ones first, or frees it.
    fn hand_on(&self) {
        let mut s = self.state.lock().expect("turns lock");
        loop {
            let Some(next) = s.urgent.pop_front().or_else(|| s.normal.pop_front()) else {
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
        let turns = Arc::new(Turns::new(8));
        let holding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
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
                        tokio::time::timeout(Duration::from_micros(50), turns.take(priority)).await;
                    return;
                }
                let _turn = turns.take(priority).await;
                let now = holding.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::task::yield_now().await;
                holding.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(turns.free(), 8, "every turn was given back");
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 8);
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
