//! What the store's integration tests share: running one check on each database.

use tenure_store::Store;

/// Runs `check` on a fresh SQLite database of its own (`name` in its folder's name), then on
/// PostgreSQL when `TENURE_TEST_DATABASE_URL` names one (its shared database: checks there use
/// ids of their own).
pub async fn on_each_database<F, Fut>(name: &str, check: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("tenure-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    check(Store::open_sqlite(&dir.join("t.db")).await.unwrap()).await;
    std::fs::remove_dir_all(&dir).unwrap();
    if let Ok(url) = std::env::var("TENURE_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        check(Store::connect(&url).await.unwrap()).await;
    }
}
