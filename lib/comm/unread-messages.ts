/**
 * A FIFO of unread messages with O(1) push and shift (Array#shift is O(n) on long
 * queues), tracking the wire bytes it holds so the Comm can apply its high-water marks.
 */
export class UnreadMessages {
  private items: unknown[] = [];
  private sizes: number[] = [];
  private head = 0;
  bytes = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(message: unknown, nbytes: number): void {
    this.items.push(message);
    this.sizes.push(nbytes);
    this.bytes += nbytes;
  }

  shift(): unknown {
    const message = this.items[this.head];
    this.bytes -= this.sizes[this.head];
    this.items[this.head] = undefined; // let the message be collected
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.sizes = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
    return message;
  }
}
