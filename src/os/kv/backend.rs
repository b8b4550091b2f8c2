//! What redb writes through: its file (or a simulated disk's), with every change of the file's
//! length synced at once. redb writes a header naming the new length before it syncs, and a
//! file system may write that header block back before it commits the length change: after a
//! power cut, redb would then find a file shorter than its header says, and refuse to open
//! (the power-cut test found this on `simdisk`). Syncing the resize closes that window; redb
//! resizes rarely (it grows by doubling).

use redb::StorageBackend;
use std::io;

#[derive(Debug)]
pub(super) struct SyncedLen<B: StorageBackend>(pub(super) B);

impl<B: StorageBackend> StorageBackend for SyncedLen<B> {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.0.read(offset, len)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)?;
        self.0.sync_data(false)
    }
    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.0.sync_data(eventual)
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
}
