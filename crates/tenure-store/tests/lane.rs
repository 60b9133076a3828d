//! The urgent lane's thread: what runs on it, and when it stops.

mod support;

use std::time::Duration;
use tenure_core::run::Priority;
use tenure_store::lane::URGENT_THREAD_NAME;

fn thread_name() -> Option<String> {
    std::thread::current().name().map(String::from)
}

/// Sends on its channel when dropped: tells when a task is gone.
struct Gone(std::sync::mpsc::Sender<()>);

impl Drop for Gone {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[tokio::test]
async fn urgent_tasks_run_on_their_own_thread_until_the_last_store_is_dropped() {
    support::on_each_database("lane", |store| async move {
        let here = std::thread::current().id();
        // Without a thread of its own, every lane runs on the caller's runtime.
        assert!(!store.has_urgent_thread());
        let id = || async { std::thread::current().id() };
        assert_eq!(store.spawn(Priority::Urgent, id()).await.unwrap(), here);

        let store = store.with_urgent_thread().unwrap();
        assert!(store.has_urgent_thread());
        let urgent = store.spawn(Priority::Urgent, async { thread_name() });
        assert_eq!(urgent.await.unwrap().as_deref(), Some(URGENT_THREAD_NAME));
        assert_eq!(store.spawn(Priority::Normal, id()).await.unwrap(), here);
        // An urgent task's own transaction runs there too, and commits.
        let writer = store.clone();
        let committed = store.spawn(Priority::Urgent, async move {
            let tx = writer.begin_with(Priority::Urgent).await.unwrap();
            tx.commit().await.unwrap();
            thread_name()
        });
        assert_eq!(
            committed.await.unwrap().as_deref(),
            Some(URGENT_THREAD_NAME)
        );

        // The thread outlives a clone, and its tasks go with the last one.
        let (tell, told) = std::sync::mpsc::channel();
        let gone = Gone(tell);
        store.spawn(Priority::Urgent, async move {
            let _gone = gone;
            std::future::pending::<()>().await
        });
        let clone = store.clone();
        drop(store);
        assert!(told.try_recv().is_err(), "the task went with a clone left");
        drop(clone);
        told.recv_timeout(Duration::from_secs(20))
            .expect("the thread's tasks are dropped with the last store");
    })
    .await;
}
