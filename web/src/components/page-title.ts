import { useEffect } from 'react';

/** Sets the browser tab title: "Page – Confidant". */
export function usePageTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} – Confidant` : 'Confidant';
  }, [title]);
}
