export type MissingCallSupport = 'webrtc' | 'media';

/**
 * What this browser lacks to take part in a call: WebRTC itself (an old or locked-down browser),
 * or access to a microphone and camera (which browsers also withhold from a page not served over
 * HTTPS). Null when it has both.
 */
export function missingCallSupport(): MissingCallSupport | null {
  if (typeof window.RTCPeerConnection !== 'function') return 'webrtc';
  const devices = navigator.mediaDevices as MediaDevices | undefined;
  if (typeof devices?.getUserMedia !== 'function') return 'media';
  return null;
}
